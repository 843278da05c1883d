"""Real worker processes (with the scripted model): killed mid-answer, and several side by side."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.db import Database
from shared.models import Message, Task
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def _status(client: TestClient, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/status/{task_id}").json()
    return body


def test_two_workers_keep_each_conversation_in_order(
    client: TestClient, db: Database, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    for _ in range(2):
        fake_workers(FAKE_TOKEN_DELAY="0.01")
    users = ["alice", "bob", "carol"]
    sent: dict[str, list[str]] = {u: [] for u in users}
    for n in range(5):
        for user in users:
            response = client.post("/api/chat", json={"user_id": user, "text": f"{user} {n}"})
            sent[user].append(response.json()["task_id"])

    all_ids = [t for ids in sent.values() for t in ids]
    wait_for(
        lambda: all(_status(client, t)["status"] == "finished" for t in all_ids), timeout=60, interval=0.2
    )

    for user, ids in sent.items():
        answers = [_status(client, t)["answer"] for t in ids]
        assert answers == [f"Answer {n + 1} to '{user} {n}' (saw {n} answers)" for n in range(5)]
    with db.reading() as s:
        tasks = {t.id: t for t in s.query(Task).all()}
    for ids in sent.values():
        for earlier, later in pairwise(ids):
            finished, started = tasks[earlier].finished_at, tasks[later].started_at
            assert finished is not None and started is not None
            assert finished <= started
    assert len({t.worker_name for t in tasks.values()}) == 2
    # No task answered twice: one answer message per task, and nothing more.
    with db.reading() as s:
        answers = s.scalar(select(func.count()).where(Message.role == "assistant"))
    assert answers == len(all_ids) == 15
