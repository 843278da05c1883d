"""Redis stopped, restarted and killed: clear refusals meanwhile, nothing accepted is ever lost."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rq.job import Job

from shared.config import GatewaySettings, QueueSettings
from shared.jobs import make_queue, make_redis
from tests.conftest import RedisServer, make_client, start_worker_process, wait_for, worker_env
from tests.helpers import wait_final

pytestmark = pytest.mark.slow


def _own_queue(server: RedisServer) -> QueueSettings:
    return QueueSettings(_env_file=None, redis_url=server.url, queue_name=f"r-{uuid.uuid4().hex[:6]}")


def test_redis_restarted_under_traffic(
    own_redis: RedisServer, gateway_settings: GatewaySettings, db_url: str, tmp_path: Path
) -> None:
    """Figure held: every accepted message answered after the restart; 503 + unhealthy while down."""
    settings = _own_queue(own_redis)
    # A job taken from Redis just as it went away is found and queued again within seconds.
    env = worker_env(db_url, settings, TASK_STALE_AFTER_SECONDS="3")
    worker = start_worker_process("tests.fake_worker", env, tmp_path / "worker.log")
    accepted: list[str] = []
    refused: list[int] = []
    stop = threading.Event()
    try:
        with make_client(gateway_settings, db_url, settings) as client:

            def traffic() -> None:
                n = 0
                while not stop.is_set():
                    response = client.post("/api/chat", json={"user_id": f"t{n % 7}", "text": f"m{n}"})
                    if response.status_code == 202:
                        accepted.append(response.json()["task_id"])
                    else:
                        assert response.status_code == 503, response.text
                        assert "queue is unavailable" in response.json()["detail"]
                        refused.append(response.status_code)
                    n += 1
                    time.sleep(0.02)

            wait_for(lambda: client.get("/health").json()["workers"] == 1, timeout=30)
            sender = threading.Thread(target=traffic)
            sender.start()
            time.sleep(1)
            own_redis.stop()
            wait_for(lambda: refused, timeout=10)
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["redis"] is False
            time.sleep(1)
            own_redis.start()
            wait_for(lambda: client.get("/health").json()["redis"], timeout=20)
            during = len(accepted)
            wait_for(lambda: len(accepted) > during + 5, timeout=20)
            stop.set()
            sender.join()

            results = [wait_final(client, task_id, timeout=60) for task_id in accepted]
    finally:
        stop.set()
        worker.kill()
        worker.wait()
    assert refused, "no request met the outage"
    assert [r["status"] for r in results] == ["finished"] * len(accepted), f"{len(accepted)} accepted"


def test_redis_killed_with_queued_work_loses_nothing(
    own_redis: RedisServer, gateway_settings: GatewaySettings, db_url: str, fake_workers: Callable[..., Any]
) -> None:
    """Figure held: 10/10 queued tasks answered after `kill -9` of Redis (append-only file)."""
    settings = _own_queue(own_redis)
    with make_client(gateway_settings, db_url, settings) as client:
        ids = [
            client.post("/api/chat", json={"user_id": f"k{n}", "text": f"queued {n}"}).json()["task_id"]
            for n in range(10)
        ]
        time.sleep(1.5)  # appendfsync everysec: what was written a second ago is on disk
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGKILL)
        own_redis.process.wait()
        own_redis.start()
        assert make_queue(settings, make_redis(settings)).count == 10
        env = {"REDIS_URL": own_redis.url, "QUEUE_NAME": settings.queue_name}
        fake_workers(**env)
        results = [wait_final(client, task_id, timeout=60) for task_id in ids]
    assert [r["status"] for r in results] == ["finished"] * 10


def test_a_result_is_served_after_rq_forgot_it(
    client: TestClient, queue: Any, run_jobs: Callable[[], None]
) -> None:
    """Figure held: the answer is served from SQLite once RQ's job and result are gone."""
    task_id = client.post("/api/chat", json={"user_id": "e", "text": "remember me"}).json()["task_id"]
    run_jobs()
    Job.fetch(
        task_id, connection=queue.connection, serializer=queue.serializer
    ).delete()  # what RQ's result_ttl does in time
    body = client.get(f"/api/status/{task_id}").json()
    assert body["status"] == "finished"
    assert body["answer"] == "Answer 1 to 'remember me' (saw 0 answers)"


def test_a_worker_told_to_stop_while_redis_is_away_stops(
    own_redis: RedisServer, db_url: str, tmp_path: Path
) -> None:
    """SIGTERM reaches a worker whose slots wait for a Redis that has gone: it stops, instead of waiting
    for Redis forever (seen: a worker left by a killed test run, alive minutes after its SIGTERM)."""
    log = tmp_path / "worker.log"
    env = worker_env(db_url, _own_queue(own_redis), PARALLEL="2")
    worker = start_worker_process("tests.fake_worker", env, log)
    try:
        wait_for(lambda: "Listening on" in log.read_text(errors="replace"), timeout=60)
        own_redis.stop()

        # Both slots have noticed and wait for Redis to come back.
        def noticed() -> bool:
            said = log.read_text(errors="replace")
            return all(f"slot-{n}: could not connect to Redis" in said for n in (0, 1))

        wait_for(noticed, timeout=60)
        worker.send_signal(signal.SIGTERM)
        # A generous bound that only a worker which never stops can miss (it used to wait forever).
        assert worker.wait(timeout=120) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
