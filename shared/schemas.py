"""Shapes of what crosses the gateway's HTTP edge, shared with its clients."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.enums import AccessStatus, DocumentFailure, FinishReason, TaskStatus
from shared.tools import ToolCall


class ErrorCode(enum.StrEnum):
    """What went wrong, for programs: every error body of /api carries one beside its sentence."""

    INVALID_INPUT = "invalid_input"
    TEXT_TOO_LONG = "text_too_long"
    UNAUTHORIZED = "invalid_api_key"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    BODY_TOO_LARGE = "body_too_large"
    RATE_LIMITED = "rate_limit_exceeded"
    TOO_MANY_ACTIVE = "too_many_active"
    TOO_MANY_STREAMS = "too_many_streams"
    QUOTA_EXCEEDED = "quota_exceeded"
    VOICE_DISABLED = "voice_disabled"
    VOICE_TOO_LONG = "voice_too_long"
    QUEUE_UNAVAILABLE = "queue_unavailable"
    QUEUE_FULL = "queue_full"
    DATABASE_BUSY = "database_busy"
    INTERNAL = "internal_error"


class QuotaPeriodName(enum.StrEnum):
    DAY = "day"
    MONTH = "month"


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in a sentence for a person.")
    code: ErrorCode
    limit: int | None = Field(
        None,
        description="With text_too_long: the most characters accepted; with voice_too_long: the most "
        "seconds; with body_too_large: the most bytes.",
    )
    resets_at: datetime | None = Field(None, description="With quota_exceeded: when the quota starts anew.")
    period: QuotaPeriodName | None = Field(None, description="With quota_exceeded: which quota was used up.")


ClientMetaValue = Annotated[str, StringConstraints(max_length=256)] | int | float | bool | None
MAX_CLIENT_META_KEYS = 20
ClientMeta = Annotated[dict[str, ClientMetaValue], Field(max_length=MAX_CLIENT_META_KEYS)]


def without_nul(value: str) -> str:
    # Nobody means a NUL character, and PostgreSQL cannot store one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ClientId = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(without_nul),
]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: ClientId | None = Field(
        None,
        description="The client's id for the person, e.g. 'tg:12345'; required with the operator's "
        "or the bot's key, ignored with a personal credential (the person is always themselves).",
    )
    text: Annotated[str, StringConstraints(strict=True)] = Field(description="The user's message.")
    chat_id: ClientId | None = Field(
        None, description="Where the user talks from (e.g. a group); one conversation per place."
    )
    idempotency_key: (
        Annotated[
            str,
            StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200),
            AfterValidator(without_nul),
        ]
        | None
    ) = Field(None, description="Sending the same key again returns the same task instead of a new one.")
    client_meta: ClientMeta | None = Field(
        None, description="The client's own notes for delivering the answer; returned with the task."
    )

    @field_validator("text")
    @classmethod
    def _text_is_meaningful(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty or only whitespace")
        return without_nul(value)


# A voice note's message until its words are known (then the transcript replaces it).
VOICE_PLACEHOLDER = "🎤"


class RegenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(strict=True)] | None = Field(
        None,
        description="The message corrected (e.g. a voice note's transcript): answered instead of the "
        "original, which leaves the history with its answer.",
    )

    @field_validator("text")
    @classmethod
    def _text_is_meaningful(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("text must not be empty or only whitespace")
        return without_nul(value) if value is not None else None


class VoiceOut(BaseModel):
    """What became of the voice note a task answers."""

    transcript: str | None = Field(None, description="The words heard, once transcribed.")
    language: str | None = Field(None, description="The language heard (or the one asked for).")
    duration_seconds: float | None = None


class SpeechLanguage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")] | None = Field(
        None, description="ISO 639-1 code of the language the person speaks in voice notes; null: detect."
    )


class DeliveryNote(BaseModel):
    """Where the bot delivers a task's answer: the bot's client notes (`client_meta`), kept with the
    task so that a restarted bot can still deliver it. The gateway keeps any client's notes as given;
    this is the shape the bot writes and reads back, in one place for both."""

    model_config = ConfigDict(extra="ignore")

    chat: int
    lang: str = "en"
    private: bool = False
    reply_to: int | None = None
    placeholder: int | None = None  # the message the answer is written into as it grows
    thread: int | None = None  # the forum topic asked in, where answers go too
    transcript: int | None = None  # the message showing a voice note's words, once sent


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_meta: ClientMeta | None = Field(None, description="Merged into the task's client notes.")
    delivered: bool = Field(False, description="The answer reached the user.")


class NewConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: ClientId | None = None
    chat_id: ClientId | None = None


class ConversationOut(BaseModel):
    conversation_id: int


class Source(BaseModel):
    """Where an answer's passages came from: a document of the person's, and the page (PDF) or
    section (Word, HTML, Markdown) of each."""

    document_id: str
    name: str
    page: int | None = None
    section: str | None = None


class DocumentOut(BaseModel):
    """A document a person sent: how far its reading got, or why it could not be read."""

    document_id: str
    name: str
    conversation_id: int
    status: TaskStatus
    size_bytes: int
    kind: str | None = Field(None, description="What it was read as: pdf, docx, html, markdown, text.")
    pages: int | None = Field(None, description="Its pages, once known (PDF).")
    pages_read: int = 0
    passages: int = Field(0, description="Passages of text found and indexed.")
    error_code: DocumentFailure | None = None
    error: str | None = Field(None, description="Why it could not be read, in the reader's words.")
    created_at: datetime


class ChatAccepted(BaseModel):
    task_id: str
    status: TaskStatus
    position: int | None = Field(None, description="1 means next to start; null once started.")
    conversation_id: int


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    queue_wait_seconds: float | None = None
    first_token_seconds: float | None = None
    generation_seconds: float | None = None


class TaskOut(BaseModel):
    task_id: str
    status: TaskStatus
    position: int | None = Field(None, description="Place in the queue while queued, 1 = next.")
    estimated_wait_seconds: float | None = Field(
        None, description="Rough wait before the answer starts, from the workers' recent speed."
    )
    partial_text: str | None = Field(None, description="The answer so far, while it is generated.")
    answer: str | None = Field(None, description="The final answer (or what was written before a cancel).")
    error: str | None = Field(None, description="What went wrong, in words a user can read.")
    conversation_id: int
    model: str | None = Field(None, description="The model that wrote the answer.")
    finish_reason: FinishReason | None = Field(
        None,
        description="Why the answer ended: stop, length or cancel; for a failure: error, timeout, "
        "context_length, worker_lost or model_unavailable.",
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delivered: bool = False
    client_meta: dict[str, ClientMetaValue] | None = None
    voice: VoiceOut | None = Field(None, description="For a voice note: its transcript once known.")
    tool_calls: list[ToolCall] | None = Field(
        None, description="The calls the answer made to the request's tools (/v1), once finished."
    )
    sources: list[Source] | None = Field(
        None, description="The documents (and pages) the answer was given passages from, once started."
    )
    usage: Usage


class Exchange(BaseModel):
    """One message of a conversation and what became of it."""

    task_id: str
    status: TaskStatus
    question: str
    answer: str | None
    error: str | None
    created_at: datetime
    superseded: bool = Field(
        False, description="Answered again since: this answer left the conversation (exports keep it)."
    )
    voice: bool = Field(False, description="The message was a voice note; `question` is what was heard.")


class UserStats(BaseModel):
    messages: int
    answers: int
    prompt_tokens: int
    completion_tokens: int
    conversations: int
    tokens_per_second: float | None = None


class PersonaOut(BaseModel):
    key: str
    names: dict[str, str]


class PersonaChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persona: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=32)]


class UserSettingsOut(BaseModel):
    persona: str
    instructions: str | None = Field(None, description="The person's own standing instructions (/prompt).")
    speech_language: str | None = Field(
        None, description="The language of their voice notes; null: detected."
    )


class SystemStatus(BaseModel):
    queued: int
    generating: int
    workers: int | None
    model: str | None
    preset: str | None = Field(None, description="The catalogue preset in use (MODEL_PRESET), if any.")
    recent_tokens_per_second: float | None


class Health(BaseModel):
    status: str
    redis: bool
    database: bool
    workers: int
    queued: int | None = None


class Me(BaseModel):
    """Who a credential belongs to, and where the web page finds their conversation."""

    role: str
    user_id: str | None
    chat_id: str | None = Field(None, description="The chat whose conversation the web page continues.")


class InviteOut(BaseModel):
    link: str | None = Field(None, description="The personal link, when PUBLIC_URL is set.")
    invite: str = Field(description="The one-time secret the link carries after '#invite='.")
    expires_at: datetime | None


class CredentialOut(BaseModel):
    """A web session or an API token of one person, as they (or an admin) see it: never its secret."""

    id: int
    kind: str = Field(description="session (a signed-in web page) or api (a token for /v1 clients)")
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    current: bool = Field(False, description="The credential this request came with.")


class RevokedOut(BaseModel):
    revoked: int = Field(description="How many web sessions and API tokens stopped working.")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invite: Annotated[str, StringConstraints(strict=True, min_length=8, max_length=128)]


class AccessOut(BaseModel):
    user_id: str
    access: AccessStatus | None
    display_name: str | None = None
    changed_at: datetime | None = None
    created: bool = Field(False, description="True when this call filed the request (tell the admins).")


class AccessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: Annotated[str, StringConstraints(max_length=128), AfterValidator(without_nul)] | None = None


class AccessDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access: AccessStatus
