"""Shapes of what crosses the gateway's HTTP edge, shared with its clients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.models import TaskStatus

ClientId = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=128)]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: ClientId = Field(description="The client's id for the person, e.g. 'tg:12345'.")
    text: Annotated[str, StringConstraints(strict=True)] = Field(description="The user's message.")
    chat_id: ClientId | None = Field(
        None, description="Where the user talks from (e.g. a group); one conversation per place."
    )
    idempotency_key: (
        Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = Field(None, description="Sending the same key again returns the same task instead of a new one.")

    @field_validator("text")
    @classmethod
    def _text_is_meaningful(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty or only whitespace")
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        return value


class NewConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: ClientId
    chat_id: ClientId | None = None


class ConversationOut(BaseModel):
    conversation_id: int


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
    partial_text: str | None = Field(None, description="The answer so far, while it is generated.")
    answer: str | None = Field(None, description="The final answer (or what was written before a cancel).")
    error: str | None = Field(None, description="What went wrong, in words a user can read.")
    conversation_id: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    usage: Usage


class Health(BaseModel):
    status: str
    redis: bool
    database: bool
    workers: int
    queued: int | None = None
