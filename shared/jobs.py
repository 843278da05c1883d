"""The queue between the gateway and the workers.

Jobs carry a task id and nothing else: user text and answers live in the database, never in
Redis (job arguments, meta and descriptions are shown raw by rq-dashboard).

Jobs are JSON, not pickles: whoever can write to Redis could otherwise make a worker unpickle
(and so run) anything. And a worker runs only its own job function with a task id (`is_ours`):
a job naming another function, callbacks or dependencies is refused without being imported.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.config import QueueSettings

GENERATE_REPLY = "worker.tasks.generate_reply"
TRANSCRIBE_VOICE = "worker.tasks.transcribe_voice"
READ_DOCUMENT = "worker.tasks.read_document"
EMBED_TEXTS = "worker.tasks.embed_texts"
# A worker process runs one RQ worker per answer it writes at once, named "<process>/slot-<n>".
SLOT_MARK = "/slot-"
SERIALIZER = JSONSerializer

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
    return Queue(
        settings.queue_name,
        connection=connection,
        default_timeout=settings.job_timeout_seconds,
        serializer=SERIALIZER,
    )


def is_ours(job: Job) -> bool:
    """Whether `job` is exactly what `enqueue_reply` makes: our function, one task id, no extras."""
    try:
        name, args, kwargs = job.func_name, job.args, job.kwargs
    except Exception:  # noqa: BLE001 - data that does not even parse is not ours either
        return False
    extras = (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name)
    return (
        name in (GENERATE_REPLY, TRANSCRIBE_VOICE, READ_DOCUMENT, EMBED_TEXTS)
        and len(args) == 1
        and isinstance(args[0], str)
        and args[0] == job.id
        and not kwargs
        and not any(extras)
        and not job._dependency_ids
    )


def _enqueue(queue: Queue, function: str, item_id: str, description: str) -> None:
    """Queue `function(item_id)` as job `item_id` (what `is_ours` accepts), so a repeat replaces it."""
    queue.enqueue(
        function,
        item_id,
        job_id=item_id,
        description=description,
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
    )


def enqueue_reply(queue: Queue, task_id: str) -> None:
    """Queue the job that answers `task_id`."""
    _enqueue(queue, GENERATE_REPLY, task_id, f"reply to task {task_id}")


def enqueue_transcription(queue: Queue, note_id: str) -> None:
    """Queue the transcription of voice note `note_id` (asked for on its own, not as a chat message)."""
    _enqueue(queue, TRANSCRIBE_VOICE, note_id, f"transcribe voice note {note_id}")


def enqueue_reading(queue: Queue, document_id: str) -> None:
    """Queue the reading of document `document_id`."""
    _enqueue(queue, READ_DOCUMENT, document_id, f"read document {document_id}")


def enqueue_embedding(queue: Queue, request_id: str) -> None:
    """Queue the embedding of the texts of request `request_id` (/v1/embeddings)."""
    _enqueue(queue, EMBED_TEXTS, request_id, f"embed texts of request {request_id}")


def changes_channel(queue_name: str) -> str:
    """The pub/sub channel on which a task's id is announced each time the task changes, and the
    text an answer grows by (`Notice`)."""
    return f"{queue_name}:task-changed"


def cancels_channel(queue_name: str) -> str:
    """The pub/sub channel on which the gateway announces a cancel of a started task to the workers."""
    return f"{queue_name}:task-cancel"


def announce_cancel(queue: Queue, task_id: str) -> None:
    """Tell the workers at once that `task_id` is to stop; the database flag is the lasting record
    (a worker that misses the notice reads it at its next publish)."""
    try:
        queue.connection.publish(cancels_channel(queue.name), task_id)
    except RedisError as exc:
        log.debug("task=%s cancel not announced: %s", task_id, exc)


class Growth(BaseModel):
    """Text added to a started task's answer: `text` goes at character `at` of the answer so far.

    Sent on the change channel between the worker's saves of the whole text, so that a follower
    gets each piece once and at once, and the database is written less often."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str = Field(min_length=1, max_length=64)
    at: int = Field(ge=0)
    text: str = Field(min_length=1)


# A change notice: the id of a task (or voice note) whose row changed, or text added to an answer.
Notice = str | Growth


def encode_notice(notice: Notice) -> str:
    # Ids are hex and never begin with "{": one channel carries both kinds unambiguously.
    return notice if isinstance(notice, str) else notice.model_dump_json()


def decode_notice(payload: str) -> Notice | None:
    """What `encode_notice` made, or None for a payload that is neither (logged, never raised)."""
    if not payload.startswith("{"):
        return payload
    try:
        return Growth.model_validate_json(payload)
    except ValidationError:
        log.warning("an unreadable change notice was ignored (%d bytes)", len(payload))
        return None


def announce_change(queue: Queue, notice: Notice) -> None:
    """Tell the gateways that a task changed (or its answer grew), so their followers learn of it
    now rather than later.

    A notice only saves waiting: the database holds the change (or will at the worker's next save,
    for a growth), and followers also look on their own now and then. So a failed notice is not an
    error for the task that changed.
    """
    try:
        queue.connection.publish(changes_channel(queue.name), encode_notice(notice))
    except RedisError as exc:
        task_id = notice if isinstance(notice, str) else notice.task_id
        log.debug("task=%s change not announced: %s", task_id, exc)


def slot_worker_name(process_name: str, slot: int) -> str:
    return f"{process_name}{SLOT_MARK}{slot}"


def count_worker_processes(queue: Queue) -> int:
    """Live worker processes on `queue` (each registers one RQ worker per slot)."""
    names = {worker.name.split(SLOT_MARK)[0] for worker in Worker.all(queue=queue)}
    return len(names)


def requeue_unreadable_jobs(queue: Queue) -> list[str]:
    """Jobs of a task that this release cannot read (pickled by an earlier release), queued again.

    Their data is never unpickled: the job id is the task id, which is all a job carries.
    """
    requeued = []
    for job_id in queue.get_job_ids():
        job = Job.fetch(job_id, connection=queue.connection, serializer=SERIALIZER)
        try:
            job.func_name  # noqa: B018 - reading it is the check
        except Exception:  # noqa: BLE001 - whatever it is, it is not readable as JSON
            if len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id):
                queue.remove(job_id)
                enqueue_reply(queue, job_id)
                requeued.append(job_id)
    return requeued
