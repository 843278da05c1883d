"""The gateway's guards under pressure: the API key on every route, twin requests, a full queue."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from rq import Queue

from api.main import create_app
from shared.config import GatewaySettings, QueueSettings
from shared.db import Database
from tests.conftest import API_KEY, make_client
from tests.helpers import row_counts

# The one route open to anybody: trading a personal link's invite for a session.
PUBLIC = {("POST", "/api/session")}


def _api_routes() -> list[tuple[str, str]]:
    """Every /api, /v1 and /metrics operation the app publishes in its OpenAPI schema."""
    schema = create_app(GatewaySettings(_env_file=None, api_key=API_KEY)).openapi()
    return sorted(
        (method.upper(), path.replace("{task_id}", "abc").replace("{user_id}", "u"))
        for path, operations in schema["paths"].items()
        if path.startswith(("/api", "/v1", "/metrics"))
        for method in operations
        if (method.upper(), path) not in PUBLIC
    )


def test_the_route_list_is_complete() -> None:
    assert len(_api_routes()) >= 12


@pytest.mark.parametrize(("method", "path"), _api_routes())
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong-key-wrong-key"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer aat_never-issued-never-issued"},
        {"Cookie": "ai_assistant_session=aas_never-issued"},
    ],
)
def test_every_api_route_needs_the_key(
    client: TestClient, db: Database, method: str, path: str, headers: dict[str, str]
) -> None:
    """Figure held: every /api, /v1 and /metrics operation x (no key, wrong key, wrong bearer, a
    personal-looking token that was never issued): 401, nothing recorded."""
    client.headers.clear()
    response = client.request(
        method, path, json={"user_id": "u", "text": "hi", "persona": "teacher"}, headers=headers
    )

    assert response.status_code == 401
    body = response.json()
    assert "key or sign-in" in (body["error"]["message"] if path.startswith("/v1") else body["detail"])
    assert (body["error"] if path.startswith("/v1") else body)["code"] == "invalid_api_key"
    assert row_counts(db) == (0, 0, 0)


def test_concurrent_twins_make_one_task(client: TestClient, db: Database, queue: Queue) -> None:
    """Figure held: 8 requests with one idempotency key at the same instant: 1 task, 1 job."""
    results: list[str] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        body = {"user_id": "u1", "text": "same message", "idempotency_key": "dup-key"}
        response = client.post("/api/chat", json=body)
        assert response.status_code in (200, 202)
        results.append(response.json()["task_id"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 8 and len(set(results)) == 1
    assert row_counts(db)[2] == 1
    assert queue.count == 1


def test_a_backlog_without_workers_is_bounded(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database, queue: Queue
) -> None:
    """Figure held: with no worker and MAX_QUEUE_LENGTH=5, 5 accepted, the next 10 refused with 503 +
    Retry-After, 5 tasks recorded and 5 jobs queued."""
    bounded = queue_settings.model_copy(update={"max_queue_length": 5})
    with make_client(gateway_settings, db_url, bounded) as client:
        codes = [
            client.post("/api/chat", json={"user_id": f"u{n}", "text": f"m{n}"}).status_code for n in range(5)
        ]
        refused = [client.post("/api/chat", json={"user_id": f"x{n}", "text": "more"}) for n in range(10)]
    assert codes == [202] * 5
    assert {r.status_code for r in refused} == {503}
    assert all(r.headers["Retry-After"] and "Too many messages" in r.json()["detail"] for r in refused)
    assert row_counts(db)[2] == 5
    assert queue.count == 5
