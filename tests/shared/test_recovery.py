"""Repairs: tasks of dead workers are failed; queued tasks whose job vanished are enqueued again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from rq import Queue
from rq.job import Job
from sqlalchemy import update

from shared.db import Database
from shared.jobs import changes_channel
from shared.models import Task, TaskStatus, utcnow
from shared.recovery import WORKER_LOST, fail_abandoned_tasks, recover, requeue_lost_tasks
from tests.conftest import wait_for


def _send(client: TestClient, text: str) -> str:
    task_id: str = client.post("/api/chat", json={"user_id": "r", "text": text}).json()["task_id"]
    return task_id


def test_only_silent_started_tasks_are_failed(client: TestClient, db: Database) -> None:
    silent, alive, waiting = _send(client, "a"), _send(client, "b"), _send(client, "c")
    now = utcnow()
    with db.writing() as s:
        s.execute(
            update(Task)
            .where(Task.id == silent)
            .values(status=TaskStatus.STARTED, started_at=now, heartbeat_at=now - timedelta(seconds=90))
        )
        s.execute(
            update(Task)
            .where(Task.id == alive)
            .values(status=TaskStatus.STARTED, started_at=now, heartbeat_at=now - timedelta(seconds=5))
        )

    assert fail_abandoned_tasks(db, stale_after=60) == [silent]

    body = client.get(f"/api/status/{silent}").json()
    assert body["status"] == "failed" and body["error"] == WORKER_LOST
    assert client.get(f"/api/status/{alive}").json()["status"] == "started"
    assert client.get(f"/api/status/{waiting}").json()["status"] == "queued"


def test_a_queued_task_whose_job_vanished_is_answered(
    client: TestClient, db: Database, queue: Queue, run_jobs: Callable[[], None]
) -> None:
    lost, kept = _send(client, "lost"), _send(client, "kept")
    # As if Redis lost its data: the job and its place in the queue are gone.
    Job.fetch(lost, connection=queue.connection, serializer=queue.serializer).delete()
    later = utcnow() + timedelta(seconds=120)

    assert requeue_lost_tasks(db, queue, stale_after=60) == []  # too young to judge yet
    assert requeue_lost_tasks(db, queue, stale_after=60, now=later) == [lost]
    assert requeue_lost_tasks(db, queue, stale_after=60, now=later) == []
    run_jobs()

    assert client.get(f"/api/status/{lost}").json()["status"] == "finished"
    assert client.get(f"/api/status/{kept}").json()["status"] == "finished"


def test_a_task_failed_by_recovery_is_announced_to_its_followers(
    client: TestClient, db: Database, queue: Queue
) -> None:
    """A follower waiting on a long poll hears of the failure at once: recovery publishes the notice
    that every other change sends (the gateway's cached status would otherwise hold for a while)."""
    silent = _send(client, "a")
    long_ago = utcnow() - timedelta(seconds=90)
    # Listening before the task goes silent: whichever pass fails it (the gateway's own, every few
    # seconds, or this one), its notice is heard.
    with queue.connection.pubsub(ignore_subscribe_messages=True) as pubsub:  # type: ignore[no-untyped-call]
        pubsub.subscribe(changes_channel(queue.name))
        with db.writing() as s:
            s.execute(
                update(Task)
                .where(Task.id == silent)
                .values(status=TaskStatus.STARTED, started_at=long_ago, heartbeat_at=long_ago)
            )
        recover(db, queue, stale_after=60, longest_read=245)
        heard = wait_for(lambda: pubsub.get_message(timeout=0.5), timeout=30)
    assert isinstance(heard, dict) and heard["data"].decode() == silent
