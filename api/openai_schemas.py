"""The subset of OpenAI's chat-completions format the gateway speaks (requests in, responses out)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.json_grammar import SchemaUnsupported, response_format_grammar

MAX_STOPS = 4
MAX_STOP_CHARS = 100


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


class JsonSchemaFormat(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    # The answer is held to the schema either way: `strict` changes nothing here.
    strict: bool | None = None
    # Named `schema_` in Python: `schema` is a BaseModel method.
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(BaseModel):
    """OpenAI's `response_format`: plain text, any JSON object, or JSON for a given schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _enforceable(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given with, and only with, type json_schema")
        try:
            response_format_grammar(self.stored())
        except SchemaUnsupported as exc:
            raise ValueError(f"response_format: {exc}") from None
        return self

    def stored(self) -> dict[str, Any]:
        """As the task keeps it and the worker reads it (the schema under its OpenAI name)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class StreamOptions(BaseModel):
    include_usage: bool = False


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
    n: Annotated[int, Field(ge=1, le=128)] = 1
    stop: (
        Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]
        | Annotated[
            list[Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]],
            Field(max_length=MAX_STOPS),
        ]
        | None
    ) = Field(None, description="Up to 4 sequences; the answer ends before the first one it writes.")
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    response_format: ResponseFormat | None = Field(
        None, description="json_object or json_schema: the answer is held to it while it is written."
    )
    stream_options: StreamOptions | None = None
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

    @model_validator(mode="after")
    def _nothing_asked_that_would_be_ignored(self) -> ChatCompletionRequest:
        """Options this server does not honour yet are refused, never answered as if absent: an
        agent that sends tools must not get a plain answer it takes for the model's choice."""
        extra = self.model_extra or {}
        refused = {
            "tools": "tool calling is not supported by this server yet",
            "functions": "function calling is not supported by this server yet",
            "logprobs": "log probabilities are not supported by this server",
        }
        if self.n != 1:
            raise ValueError("n: this server writes one choice per request; send n=1 (or leave it out)")
        for name, why in refused.items():
            if extra.get(name):
                raise ValueError(f"{name}: {why}")
        for name in ("tool_choice", "function_call"):
            if extra.get(name) not in (None, "none"):
                raise ValueError(f"{name}: tool calling is not supported by this server yet")
        if any(m.role == "tool" for m in self.messages):
            raise ValueError("messages: tool results need tool calling, which this server does not offer yet")
        return self

    @field_validator("stop")
    @classmethod
    def _stop_without_nul(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if stop is not None and "\x00" in "".join([stop] if isinstance(stop, str) else stop):
            raise ValueError("stop sequences must not contain NUL characters")
        return stop

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else self.stop

    @property
    def structured(self) -> str | None:
        """The response format a task keeps (JSON text), or None for plain text."""
        if self.response_format is None or self.response_format.type == "text":
            return None
        return json.dumps(self.response_format.stored(), ensure_ascii=False)

    @property
    def usage_streamed(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

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
