"""Text that breaks naive systems: emoji, right-to-left scripts, markup, oversized and odd input."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from rq import Queue

from shared.db import Database
from tests.fakes import FakeChatModel
from tests.helpers import row_counts
from tests.helpers import send as _send
from tests.helpers import status as _status

CASES = {
    "10 kB of emoji": "😀👍🏽🇺🇦" * 400,  # 2,000 characters, 10 kB of UTF-8
    "right-to-left": "مرحبا كيف حالك؟ שלום מה שלומך? " * 60,
    "mixed direction": "abc \u202eevil\u202c def \u200f ok",
    "zero-width and combining": "e\u0301\u200b\u200d" * 500,
}


@pytest.mark.parametrize("name", list(CASES))
def test_unusual_text_is_answered_or_refused_clearly(
    client: TestClient, run_jobs: Callable[[], None], name: str
) -> None:
    """Figure held: accepted (202) and finished, or failed with a readable message; never a 500."""
    response = client.post("/api/chat", json={"user_id": "odd", "text": CASES[name]})
    assert response.status_code == 202, response.text
    run_jobs()
    body = _status(client, response.json()["task_id"])
    assert body["status"] in ("finished", "failed"), body
    if body["status"] == "failed":
        assert body["finish_reason"] == "context_length" and "too long" in body["error"]
    else:
        assert CASES[name][:20] in body["answer"]


def test_a_conversation_longer_than_the_window_keeps_going(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    """Figure held: 30 turns of 3,000 characters (far beyond the window): 30/30 answered."""
    ids = [
        client.post("/api/chat", json={"user_id": "long", "text": f"{n} " + "w" * 3000}).json()["task_id"]
        for n in range(30)
    ]
    run_jobs()
    assert [_status(client, t)["status"] for t in ids] == ["finished"] * 30


def test_a_message_longer_than_the_window_fails_clearly(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    """Figure held: a message of 1,000 tokens for a 500-token window: failed with a readable
    "too long" message (finish_reason context_length), never given to the model; the next answered."""
    fake_model._window = 500
    task_id = _send(client, "y" * 1000)
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "failed"
    assert "too long for this model" in status["error"]
    assert status["finish_reason"] == "context_length"
    assert fake_model.prompts == []
    # The worker goes on serving.
    next_id = _send(client, "short")
    run_jobs()
    assert _status(client, next_id)["status"] == "finished"


@pytest.mark.parametrize("field", ["text", "user_id", "chat_id", "idempotency_key"])
def test_nul_bytes_in_a_message_are_refused_clearly(client: TestClient, db: Database, field: str) -> None:
    """Figure held: a NUL byte in any field of a message: 422 naming the field, 0 rows recorded."""
    body = {"user_id": "nul", "text": "hello", "chat_id": "c", "idempotency_key": "k", field: "a\x00b"}
    response = client.post("/api/chat", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"{field}: must not contain NUL characters"
    assert row_counts(db) == (0, 0, 0)


@pytest.mark.parametrize(
    "url",
    [
        "/api/status/ab%00cd",
        "/api/users/u%00x/stats",
        "/api/users/u/history?chat_id=a%00b",
        "/v1/models?x=%00",
    ],
)
def test_nul_bytes_in_a_url_are_refused_clearly(client: TestClient, url: str) -> None:
    """Figure held: %00 in a path or a query: 422 with a readable message (PostgreSQL would fail)."""
    response = client.get(url)
    assert response.status_code == 422
    assert "NUL" in response.text


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _inflate(value: bytes) -> bytes:
    try:
        return zlib.decompress(value)
    except zlib.error:
        return b""


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">'])
def test_user_text_and_answers_never_reach_redis(
    client: TestClient, queue: Queue, run_jobs: Callable[[], None], text: str
) -> None:
    """Figure held: 0 bytes of user text or answer in any Redis key, compressed or not: the job data
    rq-dashboard renders holds the task id only."""
    task_id = _send(client, text)
    run_jobs()
    assert _status(client, task_id)["status"] == "finished"

    conn = queue.connection
    values: list[bytes] = []
    for key in conn.scan_iter("*"):
        kind = conn.type(key)
        if kind == b"hash":
            values += [_raw(v) for v in conn.hgetall(key).values()]
        elif kind == b"string":
            values.append(_raw(conn.get(key)))
        elif kind == b"list":
            values += [_raw(v) for v in conn.lrange(key, 0, -1)]
    # RQ keeps a job's function and arguments pickled and compressed: look inside those too.
    dump = b" ".join(values + [_inflate(v) for v in values])
    assert b"alert" not in dump and b"Answer 1" not in dump
    # The job data rq-dashboard shows is there, and holds only the id.
    assert b"worker.tasks.generate_reply" in dump and task_id.encode() in dump
