"""Voice notes at the gateway: what is accepted, and transcriptions asked for on their own.

A voice note sent as a chat message is recorded like a typed one (`tasks.submit_chat` with an
upload): one task, in its conversation's order, whose worker first hears the note. A
transcription on its own (/v1/audio/transcriptions) is a note with its own job, waited for here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from rq import Queue
from sqlalchemy import delete, select, update
from starlette.concurrency import run_in_threadpool

from api.services.changes import TaskChanges
from api.services.stream import settled
from api.services.tasks import Limits, admit, admit_within
from api.services.users import get_or_create_user
from api.services.voice_notes import Upload, add_note
from shared.db import Database
from shared.jobs import enqueue_transcription
from shared.models import TaskStatus, VoiceNote, utcnow

log = logging.getLogger(__name__)


def submit_transcription(
    db: Database, queue: Queue, user_id: str, upload: Upload, limits: Limits, max_queue: int
) -> str:
    """Queue a transcription on its own, admitted as any other work is; returns the note id to
    wait for."""
    admit(queue, user_id, limits)
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        admit_within(session, user, limits, max_queue)
        note_id = add_note(session, user, None, upload)
    try:
        enqueue_transcription(queue, note_id)
    except Exception:
        with db.writing() as session:
            session.execute(delete(VoiceNote).where(VoiceNote.id == note_id))
        raise
    log.info("voice=%s user=%s transcription queued", note_id, user_id)
    return note_id


@dataclass(frozen=True)
class Outcome:
    status: TaskStatus
    text: str | None
    language: str | None
    duration_seconds: float | None
    error_code: str | None


def outcome(db: Database, note_id: str) -> Outcome:
    with db.reading() as session:
        row = session.execute(
            select(
                VoiceNote.status,
                VoiceNote.text,
                VoiceNote.detected_language,
                VoiceNote.duration_seconds,
                VoiceNote.error_code,
            ).where(VoiceNote.id == note_id)
        ).one()
    return Outcome(TaskStatus(row[0]), row[1], row[2], row[3], row[4])


def _give_up(db: Database, note_id: str) -> None:
    """Fail a note nobody transcribed in time (a worker lost, a queue too long)."""
    waiting = [TaskStatus.QUEUED, TaskStatus.STARTED]
    with db.writing() as session:
        session.execute(
            update(VoiceNote)
            .where(VoiceNote.id == note_id, VoiceNote.status.in_(waiting))
            .values(status=TaskStatus.FAILED, error_code="timeout", audio=None, finished_at=utcnow())
        )


async def wait_for(db: Database, changes: TaskChanges, note_id: str, timeout: float) -> Outcome:
    """The note once transcribed or failed; one still waiting after `timeout` is failed here."""
    result = await settled(changes, note_id, partial(run_in_threadpool, outcome, db, note_id), timeout)
    if result is not None:
        return result
    log.warning("voice=%s not transcribed within %.0f s", note_id, timeout)
    await run_in_threadpool(_give_up, db, note_id)
    return await run_in_threadpool(outcome, db, note_id)
