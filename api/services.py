"""What the gateway does with tasks: record them, queue them, describe them, cancel them."""

from __future__ import annotations

import logging
import secrets

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db import Database
from shared.jobs import enqueue_reply
from shared.models import Conversation, Message, Role, Task, TaskStatus, User, utcnow
from shared.schemas import ChatRequest, TaskOut, Usage

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """Redis cannot be reached; nothing was queued."""


class QueueFull(Exception):
    """Too many tasks are waiting; the request was refused."""


class TaskNotFound(Exception):
    pass


def _get_or_create_user(session: Session, external_id: str) -> User:
    user = session.scalar(select(User).where(User.external_id == external_id))
    if user is None:
        user = User(external_id=external_id)
        session.add(user)
        session.flush()
    return user


def _current_conversation(session: Session, user: User, chat_id: str) -> Conversation:
    conversation = session.scalar(
        select(Conversation)
        .where(Conversation.user_id == user.id, Conversation.chat_id == chat_id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    if conversation is None:
        conversation = Conversation(user_id=user.id, chat_id=chat_id)
        session.add(conversation)
        session.flush()
    return conversation


def _find_by_key(session: Session, external_id: str, key: str) -> Task | None:
    return session.scalar(
        select(Task)
        .join(User, Task.user_id == User.id)
        .where(User.external_id == external_id, Task.idempotency_key == key)
    )


def queued_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(Task.status == TaskStatus.QUEUED)) or 0


def submit_chat(db: Database, queue: Queue, request: ChatRequest, max_queue: int) -> tuple[Task, bool]:
    """Record the message and its task, then queue the job. Returns (task, replayed)."""
    key = request.idempotency_key
    if key is not None:
        with db.reading() as session:
            existing = _find_by_key(session, request.user_id, key)
        if existing is not None:
            return existing, True
    with db.reading() as session:
        if queued_count(session) >= max_queue:
            raise QueueFull
    try:
        queue.connection.ping()
    except RedisError as exc:
        raise QueueUnavailable from exc

    try:
        task, replayed = _record(db, request)
    except IntegrityError:
        # The same idempotency key raced us to the commit: the other request's task is the answer.
        if key is None:
            raise
        with db.reading() as session:
            existing = _find_by_key(session, request.user_id, key)
        if existing is None:
            raise
        return existing, True
    if replayed:
        return task, True
    try:
        enqueue_reply(queue, task.id)
    except RedisError as exc:
        # Leave nothing behind: the client is told to try again, and will send the message anew.
        with db.writing() as session:
            session.execute(delete(Task).where(Task.id == task.id))
            session.execute(delete(Message).where(Message.id == task.request_message_id))
        log.warning("task=%s dropped, Redis unavailable: %s", task.id, exc)
        raise QueueUnavailable from exc
    log.info("task=%s user=%s queued", task.id, request.user_id)
    return task, False


def _record(db: Database, request: ChatRequest) -> tuple[Task, bool]:
    with db.writing() as session:
        user = _get_or_create_user(session, request.user_id)
        if request.idempotency_key is not None:
            # Checked again inside the write lock: a concurrent twin may have committed meanwhile.
            existing = _find_by_key(session, request.user_id, request.idempotency_key)
            if existing is not None:
                return existing, True
        conversation = _current_conversation(session, user, request.chat_id or "")
        message = Message(conversation_id=conversation.id, role=Role.USER, content=request.text)
        session.add(message)
        session.flush()
        task = Task(
            id=secrets.token_hex(16),
            user_id=user.id,
            conversation_id=conversation.id,
            request_message_id=message.id,
            idempotency_key=request.idempotency_key,
            status=TaskStatus.QUEUED,
        )
        session.add(task)
    return task, False


def new_conversation(db: Database, user_id: str, chat_id: str | None) -> int:
    """Start a fresh conversation: the next messages of this user (in this chat) see no history."""
    with db.writing() as session:
        user = _get_or_create_user(session, user_id)
        conversation = Conversation(user_id=user.id, chat_id=chat_id or "")
        session.add(conversation)
        session.flush()
        return conversation.id


def queue_position(session: Session, task: Task) -> int | None:
    if task.status != TaskStatus.QUEUED:
        return None
    ahead = session.scalar(
        select(func.count()).where(
            Task.status == TaskStatus.QUEUED, Task.request_message_id < task.request_message_id
        )
    )
    return (ahead or 0) + 1


def describe(session: Session, task: Task) -> TaskOut:
    """The status document of a task, as clients see it."""
    answer = None
    if task.reply_message_id is not None:
        answer = session.scalar(select(Message.content).where(Message.id == task.reply_message_id))
    tokens_per_second = None
    if task.completion_tokens and task.generation_seconds:
        tokens_per_second = round(task.completion_tokens / task.generation_seconds, 2)
    queue_wait = None
    if task.started_at is not None:
        queue_wait = round((task.started_at - task.created_at).total_seconds(), 3)
    return TaskOut(
        task_id=task.id,
        status=TaskStatus(task.status),
        position=queue_position(session, task),
        partial_text=task.partial_text if task.status == TaskStatus.STARTED else None,
        answer=answer,
        error=task.error,
        conversation_id=task.conversation_id,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        usage=Usage(
            prompt_tokens=task.prompt_tokens,
            completion_tokens=task.completion_tokens,
            tokens_per_second=tokens_per_second,
            queue_wait_seconds=queue_wait,
            first_token_seconds=task.first_token_seconds,
            generation_seconds=task.generation_seconds,
        ),
    )


def get_status(db: Database, task_id: str) -> TaskOut:
    with db.reading() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise TaskNotFound
        return describe(session, task)


def cancel(db: Database, queue: Queue, task_id: str) -> TaskOut:
    """Cancel a queued task at once; ask the worker to stop a started one (it checks every token)."""
    with db.writing() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise TaskNotFound
        was_queued = task.status == TaskStatus.QUEUED
        if was_queued:
            task.status = TaskStatus.CANCELED
            task.finished_at = utcnow()
        elif task.status == TaskStatus.STARTED:
            task.cancel_requested = True
    if was_queued:
        try:
            # Only tidies the queue: a worker that still picks the job finds the task canceled.
            Job.fetch(task_id, connection=queue.connection).cancel()
        except Exception as exc:  # noqa: BLE001 - any failure here is harmless
            log.info("task=%s canceled; its job was not removed from the queue: %s", task_id, exc)
    log.info("task=%s cancel requested (was %s)", task_id, "queued" if was_queued else task.status)
    return get_status(db, task_id)
