"""The queue between the gateway and the workers.

Jobs carry a task id and nothing else: user text and answers live in the database, never in
Redis (job arguments, meta and descriptions are shown raw by rq-dashboard).
"""

from __future__ import annotations

from redis import Redis
from rq import Queue

from shared.config import QueueSettings

GENERATE_REPLY = "worker.tasks.generate_reply"


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
