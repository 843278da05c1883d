"""Shapes of what a person manages: their conversations, instructions, quotas and exports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.enums import TaskStatus
from shared.schemas import Exchange, without_nul

MAX_TITLE_CHARS = 100
MAX_INSTRUCTIONS_CHARS = 1000


class ConversationSummary(BaseModel):
    conversation_id: int
    title: str | None = Field(None, description="From the first message, or as the person renamed it.")
    chat_id: str
    created_at: datetime
    active_at: datetime = Field(description="When it was last started, written in or switched to.")
    messages: int = Field(description="Messages the person sent in it (answered again ones once).")
    current: bool = Field(description="The chat's current conversation: new messages go there.")


class ConversationRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[
        str,
        StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS),
        AfterValidator(without_nul),
    ]


class InstructionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: (
        Annotated[
            str,
            StringConstraints(strict=True, strip_whitespace=True, max_length=MAX_INSTRUCTIONS_CHARS),
            AfterValidator(without_nul),
        ]
        | None
    ) = Field(description="Added after the operator's instructions for this person; null or empty: none.")


class QuotaSetting(BaseModel):
    """An admin's quotas for one person; null: the operator's defaults (QUOTA_TOKENS_PER_…)."""

    model_config = ConfigDict(extra="forbid")

    # 32-bit integer columns on PostgreSQL.
    per_day: Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)] | None = None
    per_month: Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)] | None = None


class QuotaPeriod(BaseModel):
    used: int = Field(description="Tokens (prompt and answer) used in this period.")
    limit: int | None = Field(description="The quota; null: none.")
    resets_at: datetime


class Quota(BaseModel):
    day: QuotaPeriod
    month: QuotaPeriod


class ConversationExport(BaseModel):
    conversation_id: int
    title: str | None
    chat_id: str
    created_at: datetime
    exchanges: list[Exchange]


class TranscriptionExport(BaseModel):
    """Audio sent to be transcribed on its own (/v1/audio/transcriptions), and what was heard."""

    transcription_id: str
    status: TaskStatus
    language: str | None = Field(description="Asked for; null: detected.")
    detected_language: str | None
    duration_seconds: float | None
    text: str | None
    created_at: datetime
    audio_kept: bool = Field(description="The audio itself is still kept (until VOICE_KEEP_SECONDS).")


class UserExport(BaseModel):
    """Everything kept about a person (the answer to a data access request)."""

    user_id: str
    display_name: str | None
    persona: str | None
    instructions: str | None
    created_at: datetime
    exported_at: datetime
    conversations: list[ConversationExport] = Field(
        description="Every conversation with every exchange, answers replaced by regenerating included."
    )
    transcriptions: list[TranscriptionExport] = Field(default_factory=list)
