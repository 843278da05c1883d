"""Tasks: record a message and queue its answer, regenerate, cancel, and note delivery."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import (
    Conflict,
    NotFound,
    QueueFull,
    QueueUnavailable,
    TooManyActive,
    quotas,
    rate_limit,
    voice_notes,
)
from api.services.status import describe
from api.services.users import OPENAI_CHAT, current_conversation, get_or_create_user
from shared.config import GatewaySettings
from shared.db import Database
from shared.jobs import announce_cancel, announce_change, enqueue_reply
from shared.models import (
    FINAL_STATUSES,
    Conversation,
    Document,
    Message,
    Role,
    Task,
    TaskStatus,
    User,
    VoiceNote,
    task_table,
    utcnow,
)
from shared.schemas import MAX_CLIENT_META_KEYS, ChatRequest, TaskOut, TaskUpdate

log = logging.getLogger(__name__)


def _find_by_key(session: Session, external_id: str, key: str) -> Task | None:
    return session.scalar(
        select(Task)
        .join(User, Task.user_id == User.id)
        .where(User.external_id == external_id, Task.idempotency_key == key)
    )


def _changed(result: object) -> bool:
    return bool(getattr(result, "rowcount", 0))


# Statements of every chat request, built once (building one costs more than running it on SQLite).
_WAITING = [TaskStatus.QUEUED, TaskStatus.STARTED]
# Work waiting for a worker: tasks, transcriptions asked for on their own (/v1), which are notes
# with no task, and documents to read.
_QUEUED_COUNT = select(
    select(func.count()).where(Task.status == TaskStatus.QUEUED).scalar_subquery()
    + select(func.count())
    .where(VoiceNote.task_id.is_(None), VoiceNote.status == TaskStatus.QUEUED)
    .scalar_subquery()
    + select(func.count()).where(Document.status == TaskStatus.QUEUED).scalar_subquery()
)
_ADD_MESSAGE = insert(Message).values(role=Role.USER).returning(Message.id)


_ACTIVE_OF_USER = select(
    select(func.count())
    .where(Task.user_id == bindparam("user_id"), Task.status.in_(_WAITING))
    .scalar_subquery()
    + select(func.count())
    .where(
        VoiceNote.user_id == bindparam("user_id"),
        VoiceNote.task_id.is_(None),
        VoiceNote.status.in_(_WAITING),
    )
    .scalar_subquery()
)


_IN_FLIGHT_IN_CONVERSATION = (
    select(Task.id)
    .where(
        Task.conversation_id == bindparam("conversation_id"),
        Task.status.in_([TaskStatus.QUEUED, TaskStatus.STARTED]),
    )
    .limit(1)
)


@dataclass(frozen=True)
class Limits:
    """What one person may ask of the box: requests a minute, answers in flight, tokens a day/month."""

    per_minute: int = 0
    max_active: int = 0
    quota: quotas.Defaults = field(default_factory=quotas.Defaults)

    @classmethod
    def of(cls, settings: GatewaySettings) -> Limits:
        quota = quotas.Defaults(settings.quota_tokens_per_day, settings.quota_tokens_per_month)
        return cls(settings.rate_limit_per_minute, settings.max_active_per_user, quota)


def admit(queue: Queue, user_id: str, limits: Limits) -> None:
    """What every kind of work (a message, a regeneration, a /v1 request, a transcription) passes
    before anything is written: the person's rate, and a Redis that can take the job."""
    rate_limit.check(queue.connection, user_id, limits.per_minute)
    check_redis(queue)


def admit_within(session: Session, user: User, limits: Limits, max_queue: int) -> None:
    """What every kind of work passes inside the transaction that records it: room in the queue,
    the person's answers in flight, their quota."""
    ensure_room(session, max_queue)
    ensure_not_too_busy(session, user, limits)


def ensure_not_too_busy(session: Session, user: User, limits: Limits) -> None:
    """Refuse a new answer while the person has `max_active` queued or in progress, or is over quota."""
    quotas.check(session, user, limits.quota)
    if (
        limits.max_active
        and (session.scalar(_ACTIVE_OF_USER, {"user_id": user.id}) or 0) >= limits.max_active
    ):
        raise TooManyActive(
            f"You already have {limits.max_active} answers on the way; wait for one or cancel it."
        )


def owner_of(db: Database, task_id: str) -> str | None:
    """The user id of the person a task answers, or None when there is no such task."""
    with db.reading() as session:
        return session.scalar(
            select(User.external_id).join(Task, Task.user_id == User.id).where(Task.id == task_id)
        )


def queued_count(session: Session) -> int:
    return session.scalar(_QUEUED_COUNT) or 0


def check_redis(queue: Queue) -> None:
    """Refuse early while Redis is away, rather than record a message that cannot be queued."""
    try:
        queue.connection.ping()
    except RedisError as exc:
        raise QueueUnavailable from exc


def ensure_room(session: Session, max_queue: int) -> None:
    """Refuse a new task when `max_queue` are waiting; called in the transaction that adds it."""
    if queued_count(session) >= max_queue:
        raise QueueFull


def new_task(session: Session, user: User, conversation_id: int, text: str, **fields: Any) -> Task:
    """Add the user's message and its queued task; the task returned is a copy, not in the session."""
    message_id = session.scalar(_ADD_MESSAGE, {"conversation_id": conversation_id, "content": text})
    values = {
        "id": secrets.token_hex(16),
        "user_id": user.id,
        "conversation_id": conversation_id,
        "request_message_id": message_id,
        "status": TaskStatus.QUEUED,
        "persona": user.persona,
        **fields,
    }
    # A plain insert: the ORM's unit of work would double the cost of the whole request.
    session.execute(insert(task_table), values)
    return Task(**values)


def add_exchange(
    session: Session, user: User, conversation_id: int, question: str, answer: str, at: datetime
) -> None:
    """An earlier turn a client brings along (the OpenAI API), kept as an answered exchange."""
    question_id = session.scalar(_ADD_MESSAGE, {"conversation_id": conversation_id, "content": question})
    answer_id = session.scalar(
        insert(Message).values(role=Role.ASSISTANT).returning(Message.id),
        {"conversation_id": conversation_id, "content": answer},
    )
    session.execute(
        insert(task_table),
        {
            "id": secrets.token_hex(16),
            "user_id": user.id,
            "conversation_id": conversation_id,
            "request_message_id": question_id,
            "reply_message_id": answer_id,
            "status": TaskStatus.FINISHED,
            "created_at": at,
            "finished_at": at,
        },
    )


def enqueue_or_undo(db: Database, queue: Queue, task: Task) -> None:
    try:
        enqueue_reply(queue, task.id)
    except RedisError as exc:
        # Leave nothing behind: the client is told to try again, and will send the message anew.
        with db.writing() as session:
            session.execute(delete(Task).where(Task.id == task.id))
            session.execute(delete(Message).where(Message.id == task.request_message_id))
        log.warning("task=%s dropped, Redis unavailable: %s", task.id, exc)
        raise QueueUnavailable from exc


def submit_chat(
    db: Database,
    queue: Queue,
    request: ChatRequest,
    max_queue: int,
    limits: Limits | None = None,
    voice: voice_notes.Upload | None = None,
) -> tuple[Task, bool]:
    """Record the message and its task, then queue the job. Returns (task, replayed).

    With `voice`, the message is that voice note: its text is a placeholder until a worker hears it."""
    user_id = request.user_id
    assert user_id is not None  # the route puts the caller's user in
    key = request.idempotency_key
    if key is not None:
        with db.reading() as session:
            existing = _find_by_key(session, user_id, key)
        if existing is not None:
            return existing, True
    limits = limits or Limits()
    admit(queue, user_id, limits)
    with db.reading() as session:
        # A full queue refuses at the cost of a read: a flood of refusals takes no write lock from
        # the workers (checked again inside the write, where it counts).
        ensure_room(session, max_queue)
    try:
        task, replayed = _record(db, request, max_queue, limits, voice)
    except IntegrityError:
        # A concurrent twin won the race (PostgreSQL; SQLite's write lock serialises these): the same
        # idempotency key means its task is the answer; a new user's row means recording again works.
        with db.reading() as session:
            existing = _find_by_key(session, user_id, key) if key is not None else None
        if existing is not None:
            return existing, True
        if key is not None:
            raise
        task, replayed = _record(db, request, max_queue, limits, voice)
    if replayed:
        return task, True
    enqueue_or_undo(db, queue, task)
    log.info("task=%s user=%s queued", task.id, user_id)
    return task, False


def _record(
    db: Database,
    request: ChatRequest,
    max_queue: int,
    limits: Limits,
    voice: voice_notes.Upload | None = None,
) -> tuple[Task, bool]:
    assert request.user_id is not None
    with db.writing() as session:
        user = get_or_create_user(session, request.user_id)
        if request.idempotency_key is not None:
            # Checked again inside the write lock: a concurrent twin may have committed meanwhile.
            existing = _find_by_key(session, request.user_id, request.idempotency_key)
            if existing is not None:
                return existing, True
        admit_within(session, user, limits, max_queue)
        conversation = current_conversation(session, user, request.chat_id or "", request.text)
        task = new_task(
            session,
            user,
            conversation.id,
            request.text,
            idempotency_key=request.idempotency_key,
            client_meta=json.dumps(request.client_meta) if request.client_meta is not None else None,
            # The person's own instructions as they were when they asked (the worker adds them after
            # the operator's).
            system_prompt=user.instructions,
            voice=voice is not None,
        )
        if voice is not None:
            voice_notes.add_note(session, user, task.id, voice)
    return task, False


def regenerate(
    db: Database,
    queue: Queue,
    task_id: str,
    owner: str,
    max_queue: int,
    limits: Limits | None = None,
    text: str | None = None,
) -> Task:
    """Answer a finished (or failed, or canceled) task's message again, as a new task.

    The old exchange leaves the conversation's history, so the new answer does not see it.
    `owner` is the task's user, as the caller already looked it up. With `text`, the message is
    answered as corrected (a voice note heard wrong), and the correction is what history keeps.
    """
    limits = limits or Limits()
    admit(queue, owner, limits)
    with db.writing() as session:
        old = session.get(Task, task_id)
        if old is None:
            raise NotFound("No task with this id.")
        if old.status not in FINAL_STATUSES:
            raise Conflict("This task is still being answered; cancel it or wait for it to finish.")
        if old.superseded:
            # Pressing "regenerate" under the same answer again and again queues one task, not many.
            raise Conflict("This answer was already answered again; regenerate the newest one.")
        if session.scalar(_IN_FLIGHT_IN_CONVERSATION, {"conversation_id": old.conversation_id}):
            raise Conflict("An answer in this conversation is still being written; wait for it first.")
        user = session.get(User, old.user_id)
        text = text or session.scalar(select(Message.content).where(Message.id == old.request_message_id))
        chat = session.scalar(select(Conversation.chat_id).where(Conversation.id == old.conversation_id))
        assert user is not None and text is not None
        admit_within(session, user, limits, max_queue)
        old.superseded = True
        task = new_task(
            session,
            user,
            old.conversation_id,
            text,
            client_meta=old.client_meta,
            # A /v1 request's own instructions and sampling stay; our clients' follow /prompt now.
            system_prompt=old.system_prompt if chat == OPENAI_CHAT else user.instructions,
            max_tokens=old.max_tokens,
            temperature=old.temperature,
            top_p=old.top_p,
            seed=old.seed,
            stop=old.stop,
            response_format=old.response_format,
            presence_penalty=old.presence_penalty,
            frequency_penalty=old.frequency_penalty,
            tools=old.tools,
            transcript=old.transcript,
        )
    try:
        enqueue_or_undo(db, queue, task)
    except QueueUnavailable:
        with db.writing() as session:
            session.get_one(Task, task_id).superseded = False
        raise
    log.info("task=%s regenerates task=%s", task.id, task_id)
    return task


def get_status(db: Database, task_id: str) -> TaskOut:
    with db.reading() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound("No task with this id.")
        return describe(session, task)


def cancel(db: Database, queue: Queue, task_id: str) -> TaskOut:
    """Cancel a queued task at once; ask the worker to stop a started one (it checks every token)."""
    # Conditional updates, not read-then-write: a worker may claim the task at this very moment.
    with db.writing() as session:
        if session.get(Task, task_id) is None:
            raise NotFound("No task with this id.")
        was_queued = _changed(
            session.execute(
                sa_update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.QUEUED)
                .values(status=TaskStatus.CANCELED, finished_at=utcnow())
            )
        )
        if not was_queued:
            session.execute(
                sa_update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.STARTED)
                .values(cancel_requested=True)
            )
    if not was_queued:
        announce_cancel(queue, task_id)  # the answering worker stops at its next token
    announce_change(queue, task_id)
    if was_queued:
        try:
            # Only tidies the queue: a worker that still picks the job finds the task canceled.
            Job.fetch(task_id, connection=queue.connection, serializer=queue.serializer).cancel()
        except Exception as exc:  # noqa: BLE001 - any failure here is harmless
            log.info("task=%s canceled; its job was not removed from the queue: %s", task_id, exc)
    log.info("task=%s cancel requested (%s)", task_id, "was queued" if was_queued else "stopping")
    return get_status(db, task_id)


def update(db: Database, task_id: str, change: TaskUpdate) -> TaskOut:
    """Merge client notes into a task, and/or record that its answer reached the user."""
    with db.writing() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound("No task with this id.")
        if change.client_meta is not None:
            merged = json.loads(task.client_meta) if task.client_meta else {}
            merged.update(change.client_meta)
            if len(merged) > MAX_CLIENT_META_KEYS:  # each change is bounded; so is what they add up to
                raise Conflict(f"client_meta: a task keeps at most {MAX_CLIENT_META_KEYS} notes")
            task.client_meta = json.dumps(merged)
        if change.delivered and task.delivered_at is None:
            task.delivered_at = utcnow()
    return get_status(db, task_id)


def undelivered(db: Database, user_prefix: str, limit: int) -> list[TaskOut]:
    """Tasks with client notes whose answer was not yet marked delivered, oldest first."""
    with db.reading() as session:
        tasks = session.scalars(
            select(Task)
            .join(User, Task.user_id == User.id)
            .where(
                Task.delivered_at.is_(None),
                Task.client_meta.is_not(None),
                User.external_id.startswith(user_prefix, autoescape=True),
            )
            .order_by(Task.request_message_id)
            .limit(limit)
        ).all()
        return [describe(session, task) for task in tasks]
