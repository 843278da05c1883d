"""The gateway's chat routes against real Redis and a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from rq.job import Job

from shared.config import GatewaySettings, QueueSettings
from shared.db import Database
from shared.models import Message, Task
from tests.conftest import API_KEY, make_client
from tests.helpers import row_counts


def _post(client: TestClient, text: str = "Hello there", user: str = "u1", **extra: Any) -> Any:
    return client.post("/api/chat", json={"user_id": user, "text": text, **extra})


def test_chat_is_recorded_then_queued_with_only_the_task_id(
    client: TestClient, db: Database, queue: Queue
) -> None:
    response = _post(client, "What is the capital of France?")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["position"] == 1
    assert len(body["task_id"]) == 32
    with db.reading() as s:
        task = s.get(Task, body["task_id"])
        assert task is not None
        message = s.get(Message, task.request_message_id)
        assert message is not None and message.content == "What is the capital of France?"
    job = Job.fetch(body["task_id"], connection=queue.connection, serializer=queue.serializer)
    assert job.func_name == "worker.tasks.generate_reply"
    assert list(job.args) == [body["task_id"]]  # JSON gives a list back
    assert job.kwargs == {}
    assert "France" not in (job.description or "")
    assert queue.count == 1


def test_status_while_queued_shows_position(client: TestClient) -> None:
    ids = [_post(client, f"message {n}", user=f"user{n}").json()["task_id"] for n in range(3)]

    positions = [client.get(f"/api/status/{task_id}").json()["position"] for task_id in ids]

    assert positions == [1, 2, 3]
    status = client.get(f"/api/status/{ids[0]}").json()
    assert status["status"] == "queued"
    assert status["answer"] is None and status["error"] is None
    assert set(status["usage"]) >= {
        "prompt_tokens",
        "completion_tokens",
        "tokens_per_second",
        "queue_wait_seconds",
    }


def test_unknown_task_is_404(client: TestClient) -> None:
    for path in ("/api/status/deadbeef", "/api/tasks/deadbeef/cancel"):
        method = client.get if "status" in path else client.post
        response = method(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "No task with this id.", "code": "not_found"}


BAD_BODIES = [
    ({"user_id": "u1", "text": ""}, "text"),
    ({"user_id": "u1", "text": "   \n\t "}, "empty"),
    ({"user_id": "u1", "text": "x" * 4001}, "at most 4000"),
    ({"user_id": "u1", "text": 42}, "text"),
    ({"user_id": 7, "text": "hi"}, "user_id"),
    ({"user_id": "", "text": "hi"}, "user_id"),
    ({"text": "hi"}, "user_id"),
    ({"user_id": "u1"}, "text"),
    ({"user_id": "u1", "text": "a\x00b"}, "NUL"),
    ({"user_id": "u1", "text": "hi", "surprise": 1}, "surprise"),
    ({"user_id": "u1", "text": "hi", "chat_id": ["a"]}, "chat_id"),
    ([1, 2, 3], "body"),
]


@pytest.mark.parametrize(("body", "mentions"), BAD_BODIES)
def test_bad_input_is_a_clear_422_and_leaves_nothing(
    client: TestClient, db: Database, queue: Queue, body: Any, mentions: str
) -> None:
    response = client.post("/api/chat", json=body)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and mentions in detail
    assert row_counts(db) == (0, 0, 0)
    assert queue.count == 0


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/api/chat", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


def test_text_limit_is_a_setting(db_url: str, queue_settings: QueueSettings) -> None:
    settings = GatewaySettings(_env_file=None, api_key=API_KEY, max_text_chars=10)
    with make_client(settings, db_url, queue_settings) as client:
        assert _post(client, "0123456789").status_code == 202
        too_long = _post(client, "0123456789!")
    assert too_long.status_code == 422
    assert too_long.json()["detail"] == "text: must be at most 10 characters (got 11)"
    # Programs read the code and the limit, never the sentence (the bot tells its users the limit).
    assert too_long.json()["code"] == "text_too_long" and too_long.json()["limit"] == 10


def test_bearer_token_is_accepted(client: TestClient) -> None:
    client.headers.clear()
    response = client.post(
        "/api/chat", json={"user_id": "u", "text": "hi"}, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 202


def test_gateway_refuses_to_start_without_a_key(db_url: str, queue_settings: QueueSettings) -> None:
    with pytest.raises(RuntimeError, match="API_KEY"):
        make_client(GatewaySettings(_env_file=None, api_key=None), db_url, queue_settings)


def test_same_idempotency_key_gives_the_same_task(client: TestClient, db: Database, queue: Queue) -> None:
    first = _post(client, "hi", idempotency_key="tg:1:100")
    second = _post(client, "hi", idempotency_key="tg:1:100")
    other_user = _post(client, "hi", user="u2", idempotency_key="tg:1:100")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["task_id"] == first.json()["task_id"]
    assert other_user.json()["task_id"] != first.json()["task_id"]
    assert row_counts(db)[2] == 2
    assert queue.count == 2


def test_cancel_a_queued_task(client: TestClient, queue: Queue, run_jobs: Callable[[], None]) -> None:
    task_id = _post(client).json()["task_id"]

    canceled = client.post(f"/api/tasks/{task_id}/cancel")
    run_jobs()

    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    after = client.get(f"/api/status/{task_id}").json()
    assert after["status"] == "canceled"
    assert after["answer"] is None
    # Canceling again is harmless.
    assert client.post(f"/api/tasks/{task_id}/cancel").json()["status"] == "canceled"


def test_new_conversation_starts_without_history(client: TestClient, run_jobs: Callable[[], None]) -> None:
    _post(client, "first")
    run_jobs()
    same = _post(client, "second").json()
    run_jobs()
    created = client.post("/api/conversations", json={"user_id": "u1"})
    fresh = _post(client, "third").json()
    run_jobs()

    assert created.status_code == 201
    assert fresh["conversation_id"] == created.json()["conversation_id"] != same["conversation_id"]
    assert client.get(f"/api/status/{same['task_id']}").json()["answer"].endswith("(saw 1 answers)")
    assert client.get(f"/api/status/{fresh['task_id']}").json()["answer"].endswith("(saw 0 answers)")


def test_chats_are_separate_conversations(client: TestClient) -> None:
    private = _post(client, "hi").json()
    group = _post(client, "hi", chat_id="group-1").json()
    assert private["conversation_id"] != group["conversation_id"]
