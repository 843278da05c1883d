"""Database models: users, their conversations, the messages in them, and the tasks that answer them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# The enums live where every process may import them without SQLAlchemy; re-exported here.
from shared.enums import (
    FINAL_STATUSES,
    AccessStatus,
    CredentialKind,
    FinishReason,
    Role,
    TaskStatus,
)

__all__ = [
    "FINAL_STATUSES",
    "AccessStatus",
    "Base",
    "Conversation",
    "Credential",
    "CredentialKind",
    "Document",
    "DocumentPassage",
    "EmbeddingRequest",
    "FinishReason",
    "Message",
    "Role",
    "Task",
    "TaskStatus",
    "User",
    "VoiceNote",
    "message_table",
    "task_table",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always handed back zone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The client's own id for the person (e.g. "tg:12345"); unique across clients.
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    # Key of a built-in persona (shared.personas); None is the operator's SYSTEM_PROMPT.
    persona: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Telegram access: None until the person first writes to a bot that is not open to everyone.
    access: Mapped[str | None] = mapped_column(String(16), nullable=True)
    access_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # How the person is shown to admins (a Telegram name); informational only.
    display_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The person's own standing instructions (/prompt), added after the operator's SYSTEM_PROMPT.
    instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Token quotas set for this person by an admin; None: the operator's defaults.
    quota_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The language the person's voice notes are in (ISO 639-1); None: detected in each note.
    speech_language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Credential(Base):
    """A personal secret: only its SHA-256 is kept, so the table gives no one a way in."""

    __tablename__ = "credential"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (
        Index("ix_conversation_user_chat", "user_id", "chat_id", "id"),
        Index("ix_conversation_user_chat_active", "user_id", "chat_id", "active_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    # A user may talk to us from several places (a private chat, a group, a topic): their own list each.
    chat_id: Mapped[str] = mapped_column(String(128), default="")
    # Made from the first message; the person may rename it.
    title: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The current conversation of a chat is the one most recently started, written in or switched to.
    active_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True
    )


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (Index("ix_message_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Task(Base):
    """One request for an answer: its place in the queue, progress, result and usage."""

    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_task_user_idempotency_key"),
        Index("ix_task_status_order", "status", "request_message_id"),
        Index("ix_task_conversation_order", "conversation_id", "request_message_id"),
        Index("ix_task_user_created", "user_id", "created_at"),
    )

    # Random and unguessable: the id is the only handle a client needs.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    # Message ids grow, so they also order the tasks of a conversation and the queue.
    request_message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), unique=True)
    reply_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"), nullable=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED)
    partial_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # A regenerated answer drops out of the conversation's history.
    superseded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The message came as a voice note: the worker transcribes it (see VoiceNote) before answering.
    voice: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    persona: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Per-request overrides (the OpenAI-compatible API); None means the worker's settings.
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    top_p: Mapped[float | None] = mapped_column(Float, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A /v1 request's stop sequences, as a JSON list: the answer ends before the first one written.
    stop: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A /v1 request's response_format (json_object, json_schema) as JSON: the answer is held to it.
    response_format: Mapped[str | None] = mapped_column(Text, nullable=True)
    presence_penalty: Mapped[float | None] = mapped_column(Float, nullable=True)
    frequency_penalty: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Tool calling (/v1): the tools the answer may call (shared.tools.ToolSpec as JSON); the whole
    # conversation as the request brought it, tool calls and results included (the worker renders
    # it instead of the recorded history); and the calls the answer made (JSON list of ToolCall).
    tools: Mapped[str | None] = mapped_column(Text, nullable=True)
    transcript: Mapped[str | None] = mapped_column(Text, nullable=True)
    tool_calls: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The documents a /v1 request named (JSON list of ids; else the conversation's are used), and
    # the passages' sources put before the model (JSON list of shared.schemas.Source).
    document_ids: Mapped[str | None] = mapped_column(Text, nullable=True)
    sources: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why generation ended: "stop" (the model finished), "length" (max_tokens), "cancel", "timeout".
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The client's own notes for delivering the answer (e.g. a Telegram chat and message id), as JSON.
    client_meta: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_token_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    generation_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    request_message: Mapped[Message] = relationship(foreign_keys=[request_message_id])
    reply_message: Mapped[Message | None] = relationship(foreign_keys=[reply_message_id])


class VoiceNote(Base):
    """Audio to transcribe: a chat message spoken (with `task_id`), or a transcription on its own (/v1).

    The audio lives in the database, not on a disk the gateway and the workers would have to share,
    and only until it is transcribed (VOICE_KEEP_SECONDS); the text stays as the chat message.
    """

    __tablename__ = "voice_note"
    __table_args__ = (Index("ix_voice_note_status_finished", "status", "finished_at"),)

    # Random like a task id; a transcription on its own is queued under this id.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str | None] = mapped_column(
        ForeignKey("task.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    # For a transcription on its own; a chat message's note follows its task's status.
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED)
    audio: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # Asked for (the person's setting or the request); None: detected.
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    detected_language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why it could not be transcribed: a FinishReason of the voice_* family.
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    compute_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Document(Base):
    """A file a person asks about, in one of their conversations: kept until it is read (like a
    voice note's audio), then its text lives on as passages (DocumentPassage)."""

    __tablename__ = "document"
    __table_args__ = (Index("ix_document_user_conversation", "user_id", "conversation_id"),)

    # Random and unguessable, like a task id; the reading job is queued under it.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED)
    # The file as sent, until it is read.
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # What the reader found it to be (worker.reading.formats.Kind), its pages, and how far it got.
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pages_read: Mapped[int] = mapped_column(Integer, default=0)
    passages: Mapped[int] = mapped_column(Integer, default=0)
    # Why it could not be read (shared.enums.DocumentFailure), and the reader's own words for it.
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DocumentPassage(Base):
    """A passage of a document's text, where it is (page, section), and its terms (shared.terms).

    Indexed for full-text search by the database itself: in SQLite by the FTS5 table
    document_passage_fts (kept by triggers, ranked by BM25), in PostgreSQL by a GIN index over
    to_tsvector('simple', terms). Both see the same stemmed terms (see migration 0012)."""

    __tablename__ = "document_passage"
    __table_args__ = (Index("ix_document_passage_document", "document_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    section: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    terms: Mapped[str] = mapped_column(Text)
    # The embedder's vector of the passage (float32, little-endian), when it was on (migration 0013).
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class EmbeddingRequest(Base):
    """Texts a /v1 client wants vectors of, queued for a worker like any other work.

    The texts live here, not in Redis, and only until a worker has read them; the vectors only
    until the gateway has given them to the client. What stays (the tokens) counts towards the
    person's quota, until retention deletes the row."""

    __tablename__ = "embedding_request"
    __table_args__ = (Index("ix_embedding_request_user_created", "user_id", "created_at"),)

    # Random like a task id; the job is queued under it.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED)
    # The texts as a JSON list of strings; whether they are questions (e5's "query: ") or passages.
    texts: Mapped[str | None] = mapped_column(Text, nullable=True)
    as_query: Mapped[bool] = mapped_column(Boolean, default=True)
    # float32, little-endian, one row of `dimensions` per text.
    vectors: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    dimensions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Why there are no vectors: an EmbeddingFailure.
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    compute_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# The tables themselves, for the few hot statements that skip the ORM (typed as the tables they are).
task_table = cast(Table, Task.__table__)
message_table = cast(Table, Message.__table__)
