"""The subset of OpenAI's chat-completions format the gateway speaks (requests in, responses out)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message as plain text; only text parts are understood."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        unsupported = {part.type for part in self.content if part.type != "text"}
        if unsupported:
            raise ValueError(f"only text content is supported, not {', '.join(sorted(unsupported))}")
        return "".join(part.text or "" for part in self.content)


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI options are accepted and ignored, as clients send many.
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="Any value; the worker's model answers.")
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=500)]
    stream: bool = False
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=32768)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = Field(
        None, description="Same seed, same messages and settings: the same answer."
    )
    n: Annotated[int, Field(ge=1, le=1)] = 1
    user: Annotated[str, Field(max_length=100)] | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role != "user":
            raise ValueError("the last message must come from the user")
        for message in messages:
            text = message.text()
            if "\x00" in text:
                raise ValueError("messages must not contain NUL characters")
        if not messages[-1].text().strip():
            raise ValueError("the last message must not be empty")
        return messages

    @property
    def reply_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Choice(BaseModel):
    index: int = 0
    message: dict[str, Any]
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ai_assistant"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
