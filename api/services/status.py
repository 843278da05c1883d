"""A task's status document: queue position, wait estimate, answer and usage."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import Message, Task, TaskStatus, VoiceNote
from shared.schemas import Source, TaskOut, Usage, VoiceOut
from shared.tools import load_calls

# How many recent answers the wait estimate and the speed figures average over.
RECENT = 20


def queue_position(session: Session, task: Task) -> int | None:
    if task.status != TaskStatus.QUEUED:
        return None
    ahead = session.scalar(
        select(func.count()).where(
            Task.status == TaskStatus.QUEUED, Task.request_message_id < task.request_message_id
        )
    )
    return (ahead or 0) + 1


def recent_answer_seconds(session: Session) -> float | None:
    """Average time a worker spent on each of the latest answers (None before the first one)."""
    recent = (
        select(Task.started_at, Task.finished_at)
        .where(Task.status == TaskStatus.FINISHED, Task.started_at.is_not(None))
        .order_by(Task.finished_at.desc())
        .limit(RECENT)
    )
    rows = session.execute(recent).all()
    spans = [(done - began).total_seconds() for began, done in rows if began and done]
    return sum(spans) / len(spans) if spans else None


def estimated_wait(session: Session, position: int | None) -> float | None:
    """Seconds until a task at `position` starts, from recent speed and how many answers run at once."""
    if position is None:
        return None
    per_answer = recent_answer_seconds(session)
    if per_answer is None:
        return None
    busy = session.scalar(select(func.count()).where(Task.status == TaskStatus.STARTED)) or 0
    return round(position * per_answer / max(1, busy), 1)


def voice_of(session: Session, task: Task) -> VoiceOut | None:
    """What became of the voice note `task` answers (None for a typed message)."""
    if not task.voice:
        return None
    row = session.execute(
        select(
            VoiceNote.text, VoiceNote.detected_language, VoiceNote.language, VoiceNote.duration_seconds
        ).where(VoiceNote.task_id == task.id)
    ).one_or_none()
    if row is None:
        return VoiceOut()
    text, heard, asked, seconds = row
    return VoiceOut(transcript=text, language=heard or asked, duration_seconds=seconds)


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
    position = queue_position(session, task)
    return TaskOut(
        task_id=task.id,
        status=TaskStatus(task.status),
        position=position,
        estimated_wait_seconds=estimated_wait(session, position),
        partial_text=task.partial_text if task.status == TaskStatus.STARTED else None,
        answer=answer,
        error=task.error,
        conversation_id=task.conversation_id,
        model=task.model_name,
        finish_reason=task.finish_reason,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        delivered=task.delivered_at is not None,
        client_meta=json.loads(task.client_meta) if task.client_meta else None,
        voice=voice_of(session, task),
        tool_calls=load_calls(task.tool_calls) or None,
        sources=[Source.model_validate(source) for source in json.loads(task.sources)]
        if task.sources
        else None,
        usage=Usage(
            prompt_tokens=task.prompt_tokens,
            completion_tokens=task.completion_tokens,
            tokens_per_second=tokens_per_second,
            queue_wait_seconds=queue_wait,
            first_token_seconds=task.first_token_seconds,
            generation_seconds=task.generation_seconds,
        ),
    )
