"""End to end with the bundled model: HTTP → queue → `python -m worker` → SQLite → status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.db import Database
from shared.models import Task
from tests.conftest import REAL_MODEL, wait_for
from tests.helpers import wait_final as _wait_final

pytestmark = pytest.mark.slow


def test_real_model_answers_many_jobs_without_reloading(
    client: TestClient, real_worker: Callable[..., Path], db: Database
) -> None:
    log_file = real_worker(N_CTX="2048")
    ids = []
    for n, text in enumerate(
        ["Hi! What is 2 + 2?", "Name a colour.", "Say hello in French.", "Thanks!", "Bye"]
    ):
        response = client.post("/api/chat", json={"user_id": "e2e", "text": text, "idempotency_key": f"k{n}"})
        assert response.status_code == 202
        ids.append(response.json()["task_id"])

    partial_seen = wait_for(lambda: client.get(f"/api/status/{ids[0]}").json()["partial_text"], timeout=60)
    results = [_wait_final(client, task_id) for task_id in ids]

    assert isinstance(partial_seen, str) and partial_seen
    assert [r["status"] for r in results] == ["finished"] * 5, results
    assert all(r["answer"].strip() for r in results)
    for r in results:
        assert r["usage"]["completion_tokens"] > 0
        assert r["usage"]["tokens_per_second"] > 0  # a figure is reported; its size is for the benchmarks
        assert r["usage"]["prompt_tokens"] > 10
    # Later turns carry the earlier ones: their prompts are longer than the first one's.
    assert results[-1]["usage"]["prompt_tokens"] > results[0]["usage"]["prompt_tokens"] + 20
    log = log_file.read_text()
    assert log.count("model loaded:") == 1, log[-3000:]
    with db.reading() as s:
        workers = {t.worker_name for t in s.query(Task).all()}
    assert len(workers) == 1
    # The worker's name carries its pid: every job ran in the one process that loaded the model.
    (name,) = workers
    assert f"model loaded: {REAL_MODEL.name}" in log
    assert name is not None and f"worker {name} ready" in log


def test_real_model_refuses_a_message_longer_than_its_window(
    client: TestClient, real_worker: Callable[..., Path]
) -> None:
    real_worker(N_CTX="512")
    # About 600 tokens of text for a 512-token window.
    long_id = client.post("/api/chat", json={"user_id": "e2e", "text": "word " * 600}).json()["task_id"]
    short_id = client.post("/api/chat", json={"user_id": "e2e", "text": "Hello!"}).json()["task_id"]

    refused, answered = _wait_final(client, long_id), _wait_final(client, short_id)

    assert refused["status"] == "failed"
    assert "too long for this model" in refused["error"]
    assert answered["status"] == "finished" and answered["answer"].strip()


def test_a_seed_makes_a_sampled_answer_repeatable(
    client: TestClient, real_worker: Callable[..., Path]
) -> None:
    """/v1's `seed` reaches the worker's sampler: the same seed gives the same sampled answer, another
    seed another answer (temperature 1, so sampling really chooses). Exact batching: in the shared
    cache buffer an answer also depends on where its cells lie."""
    real_worker(EXACT_BATCHING="true")

    def answer(seed: int) -> str:
        body = {
            "model": "local",
            "messages": [{"role": "user", "content": "Write one sentence about cats."}],
            "temperature": 1.0,
            "seed": seed,
            "max_tokens": 40,
        }
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        content: str = response.json()["choices"][0]["message"]["content"]
        return content

    first, again, other = answer(5), answer(5), answer(6)
    assert first == again
    assert first != other
