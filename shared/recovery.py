"""Repair of tasks that nobody will finish: their worker died, or their job vanished from Redis.

Both the gateway (periodically) and each worker (at start) run these, so a task never stays
pending forever, whichever process survived.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select, update

from shared.db import Database
from shared.enums import DocumentFailure
from shared.jobs import announce_change, enqueue_reading, enqueue_reply
from shared.models import Document, FinishReason, Task, TaskStatus, utcnow

log = logging.getLogger(__name__)

WORKER_LOST = "The assistant stopped while writing this answer. Please send your message again."
# Job states in which RQ will not run the job (again) by itself. STARTED counts too: the task is
# still queued in the database long after a worker took its job, so that worker died (or lost
# Redis) before claiming it; a job merely waiting for an earlier message is harmless to repeat.
_DEAD_JOB_STATES = {
    JobStatus.FINISHED,
    JobStatus.FAILED,
    JobStatus.STOPPED,
    JobStatus.CANCELED,
    JobStatus.STARTED,
}


def fail_abandoned_tasks(db: Database, stale_after: float, now: datetime | None = None) -> list[str]:
    """Fail started tasks whose worker has been silent for `stale_after` seconds."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after)
    last_sign = func.coalesce(Task.heartbeat_at, Task.started_at)
    with db.writing() as session:
        ids = list(
            session.scalars(select(Task.id).where(Task.status == TaskStatus.STARTED, last_sign < cutoff))
        )
        if ids:
            session.execute(
                update(Task)
                .where(Task.id.in_(ids), Task.status == TaskStatus.STARTED)
                .values(
                    status=TaskStatus.FAILED,
                    error=WORKER_LOST,
                    finish_reason=FinishReason.WORKER_LOST,
                    finished_at=now,
                )
            )
    for task_id in ids:
        log.warning("task=%s failed: its worker stopped reporting", task_id)
    return ids


def fail_abandoned_documents(db: Database, longest: float, now: datetime | None = None) -> list[str]:
    """Fail documents started more than `longest` seconds ago: no reading lasts that long, so
    their worker stopped (each is told to send the document again)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=longest)
    with db.writing() as session:
        ids = list(
            session.scalars(
                select(Document.id).where(Document.status == TaskStatus.STARTED, Document.started_at < cutoff)
            )
        )
        if ids:
            session.execute(
                update(Document)
                .where(Document.id.in_(ids), Document.status == TaskStatus.STARTED)
                .values(
                    status=TaskStatus.FAILED,
                    error_code=DocumentFailure.INTERRUPTED,
                    error="the worker reading it stopped",
                    content=None,
                    finished_at=now,
                )
            )
    for document_id in ids:
        log.warning("document=%s failed: its worker stopped while reading it", document_id)
    return ids


def _without_job(queue: Queue, ids: list[str]) -> list[str]:
    """Those of `ids` whose job Redis no longer holds (or will not run again by itself)."""
    if not ids:
        return []
    jobs = Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer)
    return [
        item_id
        for item_id, job in zip(ids, jobs, strict=True)
        if job is None or job.get_status(refresh=False) in _DEAD_JOB_STATES
    ]


def requeue_lost_documents(
    db: Database, queue: Queue, stale_after: float, now: datetime | None = None
) -> list[str]:
    """Enqueue again the queued documents (older than `stale_after`) whose job Redis no longer holds."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
    queued = select(Document.id).where(Document.status == TaskStatus.QUEUED, Document.created_at < cutoff)
    with db.reading() as session:
        ids = list(session.scalars(queued))
    lost = _without_job(queue, ids)
    for document_id in lost:
        enqueue_reading(queue, document_id)
        log.warning("document=%s was queued but its job was gone: enqueued again", document_id)
    return lost


def requeue_lost_tasks(
    db: Database, queue: Queue, stale_after: float, now: datetime | None = None
) -> list[str]:
    """Enqueue again the queued tasks (older than `stale_after`) whose job Redis no longer holds."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after)
    with db.reading() as session:
        queued = (
            select(Task.id)
            .where(Task.status == TaskStatus.QUEUED, Task.created_at < cutoff)
            .order_by(Task.request_message_id)
        )
        ids = list(session.scalars(queued))
    lost = _without_job(queue, ids)
    for task_id in lost:
        enqueue_reply(queue, task_id)
        log.warning("task=%s was queued but its job was gone: enqueued again", task_id)
    return lost


def recover(db: Database, queue: Queue, stale_after: float, longest_read: float) -> None:
    """One repair pass; a Redis outage only postpones the part that needs Redis. `longest_read`:
    DocumentSettings.longest_read_seconds()."""
    for task_id in [*fail_abandoned_tasks(db, stale_after), *fail_abandoned_documents(db, longest_read)]:
        # Its followers learn of the failure now, not when their cached status runs out.
        announce_change(queue, task_id)
    try:
        requeue_lost_tasks(db, queue, stale_after)
        requeue_lost_documents(db, queue, stale_after)
    except RedisError as exc:
        log.warning("lost-task check skipped, Redis is unavailable: %s", exc)


class Periodic(threading.Thread):
    """Calls `action` every `interval` seconds in a daemon thread until stopped; failures are logged."""

    def __init__(self, name: str, interval: float, action: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self._interval = interval
        self._action = action
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._action()
            except Exception:
                log.exception("%s failed; will try again", self.name)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=10)


def recovery_thread(db: Database, queue: Queue, stale_after: float, longest_read: float) -> Periodic:
    """Recovery four times per staleness limit: a dead worker's task fails within 1.25 x the limit."""
    return Periodic(
        "task-recovery", max(0.5, stale_after / 4), lambda: recover(db, queue, stale_after, longest_read)
    )
