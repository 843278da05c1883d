"""Small helpers the tests share for talking to the gateway."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.db import Database
from shared.models import Message, Task, User
from tests.conftest import wait_for

FINAL = ("finished", "failed", "canceled")


def send(client: TestClient, text: str, user: str = "u1", **extra: Any) -> str:
    """POST a chat message, expect it accepted, return its task id."""
    response = client.post("/api/chat", json={"user_id": user, "text": text, **extra})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def status(client: TestClient, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/status/{task_id}").json()
    return body


def wait_final(client: TestClient, task_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll until the task is finished, failed or canceled; its last status."""

    def done() -> dict[str, Any] | None:
        body = status(client, task_id)
        return body if body["status"] in FINAL else None

    result: dict[str, Any] = wait_for(done, timeout=timeout, interval=0.1)  # type: ignore[assignment]
    return result


def row_counts(db: Database) -> tuple[int, int, int]:
    """How many users, messages and tasks the database holds."""
    with db.reading() as s:
        return (
            s.scalar(select(func.count()).select_from(User)) or 0,
            s.scalar(select(func.count()).select_from(Message)) or 0,
            s.scalar(select(func.count()).select_from(Task)) or 0,
        )
