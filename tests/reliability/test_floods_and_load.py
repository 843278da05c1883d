"""Floods and load: one user flooding, and 200 messages from 50 users on two workers."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.config import GatewaySettings, QueueSettings
from shared.db import Database
from shared.models import Message, Task
from tests.conftest import API_KEY, make_client, wait_for


def test_a_flooding_user_gets_429_and_others_are_unaffected(
    db_url: str, queue_settings: QueueSettings
) -> None:
    """Figure held: 5/5 accepted then 5/5 refused with Retry-After for the flooder; 3/3 for another user."""
    # Answers in flight are not the limit here (nothing answers them): the rate is.
    settings = GatewaySettings(
        _env_file=None, api_key=API_KEY, rate_limit_per_minute=5, max_active_per_user=50
    )
    with make_client(settings, db_url, queue_settings) as client:
        codes = [client.post("/api/chat", json={"user_id": "flood", "text": f"m{n}"}) for n in range(10)]
        others = [client.post("/api/chat", json={"user_id": "calm", "text": f"c{n}"}) for n in range(3)]

    assert [r.status_code for r in codes] == [202] * 5 + [429] * 5
    refused = codes[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert "Too many messages from this user" in refused.json()["detail"]
    assert [r.status_code for r in others] == [202] * 3


@pytest.mark.slow
def test_200_messages_from_50_users_on_two_workers(
    client: TestClient, db: Database, fake_workers: Callable[..., Any], tmp_path: Path
) -> None:
    """Figure held: 200/200 answered, 0 answered twice, per-user order kept, 0 "database is locked"."""
    for _ in range(2):
        fake_workers(FAKE_TOKEN_DELAY="0.001")
    sent: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    errors: list[str] = []

    def user(n: int) -> None:
        for turn in range(4):
            response = client.post("/api/chat", json={"user_id": f"load-{n}", "text": f"turn {turn}"})
            if response.status_code != 202:
                errors.append(f"{response.status_code} {response.text}")
                return
            with lock:
                sent[f"load-{n}"].append(response.json()["task_id"])

    threads = [threading.Thread(target=user, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [task_id for tasks in sent.values() for task_id in tasks]
    assert len(ids) == 200

    def finished() -> int:
        with db.reading() as s:
            return s.scalar(select(func.count()).where(Task.status == "finished")) or 0

    wait_for(lambda: finished() == 200, timeout=180, interval=0.5)
    with db.reading() as s:
        answers = s.scalar(select(func.count()).where(Message.role == "assistant"))
        tasks = {t.id: t for t in s.scalars(select(Task))}
    assert answers == 200, f"{answers} answers for 200 tasks"
    for user_id, task_ids in sent.items():
        replies = [client.get(f"/api/status/{t}").json()["answer"] for t in task_ids]
        assert replies == [f"Answer {n + 1} to 'turn {n}' (saw {n} answers)" for n in range(4)], user_id
        starts = [tasks[t].started_at for t in task_ids]
        assert starts == sorted(starts)  # type: ignore[type-var]
    logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    assert "database is locked" not in logs
