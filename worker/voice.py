"""Voice notes in the worker: hearing a chat message before it is answered, and transcriptions on
their own (/v1/audio/transcriptions). The audio is read from the database and dropped from it once
heard (unless VOICE_KEEP_SECONDS keeps it longer); the words become the chat message itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db import Database
from shared.models import Conversation, FinishReason, Message, Task, TaskStatus, VoiceNote, utcnow
from shared.schemas import VOICE_PLACEHOLDER
from shared.titles import title_from
from worker.speech import Transcriber, Transcript, VoiceFailed

log = logging.getLogger(__name__)

# What a task's `error` says (clients word it themselves from the finish reason).
VOICE_ERRORS = {
    FinishReason.VOICE_UNREADABLE: "The voice note could not be read; please send it again.",
    FinishReason.VOICE_EMPTY: "No speech was heard in the voice note.",
    FinishReason.VOICE_TOO_LONG: "The voice note is too long to transcribe.",
    FinishReason.VOICE_LANGUAGE: "The speech model of this server does not know that language.",
    FinishReason.VOICE_UNAVAILABLE: "Voice notes cannot be transcribed on this server right now.",
}


# What hearing a note needs, in `_Note`'s order.
_NOTE = select(VoiceNote.id, VoiceNote.audio, VoiceNote.language, VoiceNote.text)


@dataclass(frozen=True)
class _Note:
    id: str
    audio: bytes | None
    language: str | None
    text: str | None


class VoiceWork:
    """What one worker process does with voice notes; the speech model is loaded on the first one."""

    def __init__(
        self,
        db: Database,
        transcriber: Transcriber | None,
        worker_name: str,
        announce: Callable[[str], None],
        keep_seconds: int = 0,
    ) -> None:
        self.db = db
        self.transcriber = transcriber
        self.worker_name = worker_name
        self._announce = announce
        self._keep = keep_seconds

    def hear(self, task_id: str, should_stop: Callable[[], bool]) -> str:
        """The words of the voice note that task `task_id` answers, written as its message.

        Raises VoiceFailed (recorded on the note) when there are none to be had."""
        with self.db.reading() as session:
            row = session.execute(_NOTE.where(VoiceNote.task_id == task_id)).one_or_none()
        if row is None:
            raise VoiceFailed(FinishReason.VOICE_UNREADABLE, "the task has no voice note")
        note = _Note(*row)
        if note.text is not None:  # heard before this worker was stopped; the message holds it
            return note.text
        transcript = self._transcribe(note, should_stop)
        with self.db.writing() as session:
            task = session.get_one(Task, task_id)
            session.execute(
                update(Message).where(Message.id == task.request_message_id).values(content=transcript.text)
            )
            session.execute(
                update(Conversation)
                .where(Conversation.id == task.conversation_id, Conversation.title == VOICE_PLACEHOLDER)
                .values(title=title_from(transcript.text))
            )
            self._record(session, note.id, transcript, TaskStatus.FINISHED)
        self._announce(task_id)
        log.info(
            "task=%s voice note heard: %.1f s of %s in %.2f s",
            task_id,
            transcript.duration_seconds,
            transcript.language,
            transcript.compute_seconds,
        )
        return transcript.text

    def transcribe_alone(self, note_id: str) -> None:
        """A transcription asked for on its own: its note holds the text, or why there is none."""
        with self.db.writing() as session:
            claimed = session.execute(
                update(VoiceNote)
                .where(VoiceNote.id == note_id, VoiceNote.status == TaskStatus.QUEUED)
                .values(status=TaskStatus.STARTED, worker_name=self.worker_name)
            )
            row = session.execute(_NOTE.where(VoiceNote.id == note_id)).one_or_none()
        if not getattr(claimed, "rowcount", 0) or row is None:
            log.info("voice=%s nothing to do", note_id)
            return
        self._announce(note_id)
        try:
            transcript = self._transcribe(_Note(*row), lambda: False)
        except VoiceFailed:
            self._announce(note_id)
            return
        with self.db.writing() as session:
            self._record(session, note_id, transcript, TaskStatus.FINISHED)
        self._announce(note_id)
        log.info(
            "voice=%s transcribed: %.1f s in %.2f s",
            note_id,
            transcript.duration_seconds,
            transcript.compute_seconds,
        )

    def _transcribe(self, note: _Note, should_stop: Callable[[], bool]) -> Transcript:
        try:
            if self.transcriber is None:
                raise VoiceFailed(FinishReason.VOICE_UNAVAILABLE, "VOICE_ENABLED is off in this worker")
            if note.audio is None:
                raise VoiceFailed(FinishReason.VOICE_UNREADABLE, "the audio is no longer kept")
            return self.transcriber.transcribe(note.audio, note.language, should_stop)
        except VoiceFailed as exc:
            log.info("voice=%s not transcribed (%s): %s", note.id, exc.reason, exc)
            with self.db.writing() as session:
                session.execute(
                    update(VoiceNote)
                    .where(VoiceNote.id == note.id)
                    .values(
                        status=TaskStatus.FAILED,
                        error_code=exc.reason,
                        finished_at=utcnow(),
                        **self._done_with_audio(),
                    )
                )
            raise

    def _done_with_audio(self) -> dict[str, None]:
        """The columns a note's end sets about its audio: dropped at once unless VOICE_KEEP_SECONDS."""
        return {} if self._keep else {"audio": None}

    def _record(self, session: Session, note_id: str, transcript: Transcript, status: TaskStatus) -> None:
        session.execute(
            update(VoiceNote)
            .where(VoiceNote.id == note_id)
            .values(
                status=status,
                text=transcript.text,
                detected_language=transcript.language,
                duration_seconds=transcript.duration_seconds,
                compute_seconds=transcript.compute_seconds,
                finished_at=utcnow(),
                **self._done_with_audio(),
            )
        )
