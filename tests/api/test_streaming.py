"""Server-Sent Events of a task, and the conversation history a chat page reloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient


def _events(client: TestClient, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    with client.stream("GET", f"/api/tasks/{task_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


@pytest.mark.slow
def test_events_stream_the_answer_as_it_grows(client: TestClient, fake_workers: Callable[..., Any]) -> None:
    task_id = client.post("/api/chat", json={"user_id": "web", "text": "stream please"}).json()["task_id"]
    fake_workers(FAKE_TOKEN_DELAY="0.12", PARTIAL_INTERVAL_SECONDS="0.05")

    events = _events(client, task_id)

    names = [name for name, _ in events]
    assert names[0] == "status" and names[-1] == "done"
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) >= 3, events
    final = events[-1][1]
    assert final["status"] == "finished"
    assert "".join(deltas) == final["answer"] == "Answer 1 to 'stream please' (saw 0 answers)"


def test_events_of_a_finished_task_and_an_unknown_one(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    task_id = client.post("/api/chat", json={"user_id": "web", "text": "quick"}).json()["task_id"]
    run_jobs()

    events = _events(client, task_id)

    assert [name for name, _ in events] == ["delta", "done"]
    assert events[0][1]["text"] == events[1][1]["answer"]
    assert client.get("/api/tasks/nope/events").status_code == 404


def test_history_lists_the_current_conversation(client: TestClient, run_jobs: Callable[[], None]) -> None:
    assert client.get("/api/users/web/history").json() == []
    first = client.post("/api/chat", json={"user_id": "web", "text": "one"}).json()["task_id"]
    run_jobs()
    client.post(f"/api/tasks/{first}/regenerate")
    run_jobs()
    pending = client.post("/api/chat", json={"user_id": "web", "text": "two"}).json()["task_id"]

    history = client.get("/api/users/web/history").json()

    assert [(h["question"], h["status"]) for h in history] == [("one", "finished"), ("two", "queued")]
    assert history[0]["answer"] == "Answer 1 to 'one' (saw 0 answers)"
    assert history[1]["task_id"] == pending and history[1]["answer"] is None
