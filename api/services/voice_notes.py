"""A voice note's audio, as the gateway checks and records it (before any task or job is made)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared.config import VoiceSettings
from shared.models import TaskStatus, User, VoiceNote, utcnow
from shared.schemas import ErrorCode


class VoiceRefused(Exception):
    """A note refused before it is queued: voice is off, or the note is too long, large or empty."""

    def __init__(self, status: int, code: str, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.limit = status, code, limit


@dataclass(frozen=True)
class Upload:
    """An audio file as received; `language` is the one asked for (None: the person's setting)."""

    audio: bytes
    language: str | None = None


def check_upload(settings: VoiceSettings, audio: bytes, declared_seconds: float | None) -> None:
    """Refuse what would only fail in the worker: voice off, an empty file, a note declared too long.

    (A note's real length is known once it is decoded: the worker checks it again.)"""
    if not settings.voice_enabled:
        raise VoiceRefused(503, ErrorCode.VOICE_DISABLED, "Voice notes are turned off on this server.")
    if len(audio) > settings.voice_max_bytes:
        limit = settings.voice_max_bytes
        raise VoiceRefused(
            413, ErrorCode.BODY_TOO_LARGE, f"The audio is larger than {limit} bytes.", limit=limit
        )
    if not audio:
        raise VoiceRefused(422, ErrorCode.INVALID_INPUT, "The audio file is empty.")
    if declared_seconds is not None and declared_seconds > settings.stt_max_seconds:
        limit = settings.stt_max_seconds
        raise VoiceRefused(
            422, ErrorCode.VOICE_TOO_LONG, f"Voice notes may be at most {limit} seconds long.", limit=limit
        )


def add_note(session: Session, user: User, task_id: str | None, upload: Upload) -> str:
    """Record the audio of a note (for task `task_id`, or on its own); returns the note's id."""
    note_id = secrets.token_hex(16)
    session.execute(
        insert(VoiceNote),
        {
            "id": note_id,
            "user_id": user.id,
            "task_id": task_id,
            "status": TaskStatus.QUEUED,
            "audio": upload.audio,
            "size_bytes": len(upload.audio),
            "language": upload.language or user.speech_language,
            "created_at": utcnow(),
        },
    )
    return note_id
