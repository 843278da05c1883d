"""The words processes exchange about tasks and people, as enums: imported by the gateway, the
workers and the bot alike (no SQLAlchemy here, so the bot does not load it)."""

from __future__ import annotations

import enum


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.CANCELED})


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class AccessStatus(enum.StrEnum):
    """Whether a person may talk to the bot (admins decide; kept in the database)."""

    REQUESTED = "requested"
    ALLOWED = "allowed"
    BLOCKED = "blocked"


class CredentialKind(enum.StrEnum):
    # A one-time link's secret, exchanged for a session when the page opens it.
    INVITE = "invite"
    # The web page's session, kept in an HttpOnly cookie.
    SESSION = "session"
    # A personal token for OpenAI-compatible clients (/v1) and scripts.
    API = "api"


class FinishReason(enum.StrEnum):
    """Why an answer ended; from TIMEOUT on, failures, each told to people in words of its own."""

    STOP = "stop"
    # The answer ends with calls to the request's tools (/v1), for the client to run.
    TOOL_CALLS = "tool_calls"
    LENGTH = "length"
    CANCEL = "cancel"
    TIMEOUT = "timeout"
    ERROR = "error"
    CONTEXT_LENGTH = "context_length"
    WORKER_LOST = "worker_lost"
    MODEL_UNAVAILABLE = "model_unavailable"
    # A voice note that could not become text (the answer is never written).
    VOICE_UNREADABLE = "voice_unreadable"
    VOICE_EMPTY = "voice_empty"
    VOICE_TOO_LONG = "voice_too_long"
    VOICE_LANGUAGE = "voice_language"
    VOICE_UNAVAILABLE = "voice_unavailable"


VOICE_FAILURES = frozenset(
    {
        FinishReason.VOICE_UNREADABLE,
        FinishReason.VOICE_EMPTY,
        FinishReason.VOICE_TOO_LONG,
        FinishReason.VOICE_LANGUAGE,
        FinishReason.VOICE_UNAVAILABLE,
    }
)


class DocumentFailure(enum.StrEnum):
    """Why a document could not be read; each is told to people in words of its own."""

    # Not a file of a kind we read (an archive, a program, a picture while OCR is off, …).
    UNSUPPORTED = "document_unsupported"
    # Claims to be a PDF or DOCX but is broken.
    UNREADABLE = "document_unreadable"
    # A password protects it.
    ENCRYPTED = "document_encrypted"
    # Pages with no text layer (a scan): nothing to search.
    NO_TEXT = "document_no_text"
    # Over a limit: bytes, pages, text, or what it unpacks to.
    TOO_LARGE = "document_too_large"
    # Reading took longer, or more memory, than a document may.
    TOO_COSTLY = "document_too_costly"
    # The worker reading it stopped (it is sent again to be read).
    INTERRUPTED = "document_interrupted"


class EmbeddingFailure(enum.StrEnum):
    """Why an embedding request (/v1/embeddings) has no vectors; each is its own OpenAI error."""

    # No embedder here (off, not fetched, not compiled), or the remote server has none.
    UNAVAILABLE = "embedder_unavailable"
    # The embedder (or the remote server) failed on the texts.
    FAILED = "embedding_failed"
    # Nobody embedded them in time (a worker lost, a queue too long).
    TIMEOUT = "timeout"
