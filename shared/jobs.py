"""The queue between the gateway and the workers.

Jobs carry a task id and nothing else: user text and answers live in the database, never in
Redis (job arguments, meta and descriptions are shown raw by rq-dashboard).
"""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker

from shared.config import QueueSettings

GENERATE_REPLY = "worker.tasks.generate_reply"
# A worker process runs one RQ worker per answer it writes at once, named "<process>/slot-<n>".
SLOT_MARK = "/slot-"

log = logging.getLogger(__name__)


def make_redis(settings: QueueSettings) -> Redis:
    """A Redis client that fails fast when the server is away, and reconnects by itself later."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def make_queue(settings: QueueSettings, connection: Redis) -> Queue:
    return Queue(settings.queue_name, connection=connection, default_timeout=settings.job_timeout_seconds)


def enqueue_reply(queue: Queue, task_id: str) -> None:
    """Queue the job that answers `task_id`; its job id is the task id, so a repeat replaces it."""
    queue.enqueue(
        GENERATE_REPLY,
        task_id,
        job_id=task_id,
        description=f"reply to task {task_id}",
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
    )


def changes_channel(queue_name: str) -> str:
    """The pub/sub channel on which a task's id is announced each time the task changes."""
    return f"{queue_name}:task-changed"


def announce_change(queue: Queue, task_id: str) -> None:
    """Tell the gateways that `task_id` changed, so their followers read it now rather than later.

    A notice only saves waiting: the database holds the change, and followers also look on their
    own now and then. So a failed notice is not an error for the task that changed.
    """
    try:
        queue.connection.publish(changes_channel(queue.name), task_id)
    except RedisError as exc:
        log.debug("task=%s change not announced: %s", task_id, exc)


def slot_worker_name(process_name: str, slot: int) -> str:
    return f"{process_name}{SLOT_MARK}{slot}"


def count_worker_processes(queue: Queue) -> int:
    """Live worker processes on `queue` (each registers one RQ worker per slot)."""
    names = {worker.name.split(SLOT_MARK)[0] for worker in Worker.all(queue=queue)}
    return len(names)
