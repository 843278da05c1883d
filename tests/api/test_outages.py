"""Redis going away and coming back, and what /health says meanwhile."""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.config import GatewaySettings, QueueSettings
from shared.db import Database
from shared.jobs import make_queue, make_redis
from shared.models import Message, Task
from tests.conftest import RedisServer, make_client


def test_health_reports_parts_and_workers(client: TestClient, queue_settings: QueueSettings) -> None:
    from rq import SimpleWorker

    body = client.get("/health").json()
    assert body == {"status": "ok", "redis": True, "database": True, "workers": 0, "queued": 0}

    conn = make_redis(queue_settings)
    job_queue = make_queue(queue_settings, conn)
    worker = SimpleWorker([job_queue], connection=conn, serializer=job_queue.serializer)
    worker.register_birth()  # type: ignore[no-untyped-call]
    try:
        assert client.get("/health").json()["workers"] == 1
    finally:
        worker.register_death()  # type: ignore[no-untyped-call]
        conn.close()


def test_redis_down_gives_503_leaves_nothing_and_recovers(
    own_redis: RedisServer, gateway_settings: GatewaySettings, db_url: str, db: Database
) -> None:
    settings = QueueSettings(_env_file=None, redis_url=own_redis.url, queue_name=f"q-{uuid.uuid4().hex[:6]}")
    with make_client(gateway_settings, db_url, settings) as client:
        assert client.post("/api/chat", json={"user_id": "u", "text": "before"}).status_code == 202

        own_redis.stop()
        started = time.monotonic()
        down = client.post("/api/chat", json={"user_id": "u", "text": "during"})
        took = time.monotonic() - started
        health = client.get("/health")

        assert down.status_code == 503
        assert "queue is unavailable" in down.json()["detail"]
        assert down.headers["Retry-After"]
        assert took < 10, f"a refused request took {took:.1f}s"
        assert health.status_code == 503
        assert health.json()["redis"] is False and health.json()["database"] is True
        with db.reading() as s:
            assert s.scalar(select(func.count()).select_from(Task)) == 1
            assert s.scalar(select(func.count()).where(Message.content == "during")) == 0

        own_redis.start()
        again = client.post("/api/chat", json={"user_id": "u", "text": "after"})
        assert again.status_code == 202
        assert client.get("/health").json()["redis"] is True
        # The task accepted before the outage survived it (append-only file).
        queue = make_queue(settings, make_redis(settings))
        assert queue.count == 2
