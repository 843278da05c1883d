"""The subset of OpenAI's chat-completions format the gateway speaks (requests in, responses out)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.json_grammar import SchemaUnsupported, response_format_grammar, schema_grammar
from shared.schemas import Source
from shared.tools import FUNCTION_NAME, MAX_TOOLS, ToolChoice, ToolFunction, ToolSpec

MAX_STOPS = 4
MAX_STOP_CHARS = 100


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class FunctionCallIn(BaseModel):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    arguments: Annotated[str, Field(max_length=100_000)]

    def parsed(self) -> Any:
        """The arguments as JSON (a model's template writes them as an object, not as text)."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            raise ValueError(f"tool_calls: the arguments of {self.name} are not valid JSON") from None


class ToolCallIn(BaseModel):
    """A call an earlier answer made, as the client brings it back."""

    id: Annotated[str, Field(min_length=1, max_length=100)]
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    # An assistant's calls, and a tool message's answer to one of them.
    tool_calls: Annotated[list[ToolCallIn], Field(max_length=MAX_TOOLS)] | None = None
    tool_call_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None

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


class ToolIn(BaseModel):
    type: Literal["function"]
    function: ToolFunction


class NamedFunction(BaseModel):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


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
    tools: Annotated[list[ToolIn], Field(max_length=MAX_TOOLS)] | None = Field(
        None, description="Functions the model may call; their arguments are held to each one's schema."
    )
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    # More than one call in an answer only when asked for: unasked, a small model that has made a
    # call tends to make the same one again and again (measured with Qwen2.5-Coder 1.5B).
    parallel_tool_calls: bool | None = None
    user: Annotated[str, Field(max_length=100)] | None = None
    # Ours, not OpenAI's: documents the token's owner sent (POST /api/documents).
    documents: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=20)] | None
    ) = Field(
        None,
        description="Ids of documents you sent (POST /api/documents): the answer is given from their "
        "passages, and the response's `sources` names the documents and pages they came from.",
    )

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role not in ("user", "tool"):
            raise ValueError("the last message must come from the user (or be a tool's result)")
        for message in messages:
            text = message.text()
            if "\x00" in text:
                raise ValueError("messages must not contain NUL characters")
        if messages[-1].role == "user" and not messages[-1].text().strip():
            raise ValueError("the last message must not be empty")
        called: set[str] = set()
        for message in messages:
            if message.tool_calls and message.role != "assistant":
                raise ValueError("tool_calls: only an assistant's message makes tool calls")
            for call in message.tool_calls or []:
                call.function.parsed()
                called.add(call.id)
            if message.role == "tool" and message.tool_call_id not in called:
                raise ValueError("messages: a tool message must answer an earlier tool call (tool_call_id)")
        return messages

    @field_validator("tools")
    @classmethod
    def _tools_enforceable(cls, tools: list[ToolIn] | None) -> list[ToolIn] | None:
        names = [tool.function.name for tool in tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tools: each function needs a name of its own")
        for tool in tools or []:
            if tool.function.parameters.get("type", "object") != "object":
                raise ValueError(f"tools: the parameters of {tool.function.name} must be an object schema")
            try:
                schema_grammar(tool.function.parameters)
            except SchemaUnsupported as exc:
                raise ValueError(f"tools: {tool.function.name}: {exc}") from None
        return tools

    @model_validator(mode="after")
    def _nothing_asked_that_would_be_ignored(self) -> ChatCompletionRequest:
        """Options this server does not honour yet are refused, never answered as if absent: an
        agent that sends tools must not get a plain answer it takes for the model's choice."""
        extra = self.model_extra or {}
        refused = {
            "functions": "the old function-calling form is not supported; send tools instead",
            "function_call": "the old function-calling form is not supported; send tool_choice instead",
            "logprobs": "log probabilities are not supported by this server",
        }
        if self.n != 1:
            raise ValueError("n: this server writes one choice per request; send n=1 (or leave it out)")
        for name, why in refused.items():
            if extra.get(name) and extra.get(name) != "none":
                raise ValueError(f"{name}: {why}")
        choice = self.tool_choice
        if choice not in (None, "none") and not self.tools:
            raise ValueError("tool_choice: there are no tools to choose from")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in {
            tool.function.name for tool in self.tools or []
        }:
            raise ValueError(f"tool_choice: no tool is named {choice.function.name}")
        if self.tool_spec is not None and self.structured is not None:
            raise ValueError("response_format: not with tools; describe the answer as a tool instead")
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
    def tool_spec(self) -> ToolSpec | None:
        """The tools the answer may call; None without tools or with tool_choice none."""
        if not self.tools or self.tool_choice == "none":
            return None
        functions = [tool.function for tool in self.tools]
        if isinstance(self.tool_choice, NamedToolChoice):
            return ToolSpec(
                functions=functions,
                choice=ToolChoice.FUNCTION,
                name=self.tool_choice.function.name,
                parallel=False,
            )
        choice = ToolChoice.REQUIRED if self.tool_choice == "required" else ToolChoice.AUTO
        return ToolSpec(functions=functions, choice=choice, parallel=self.parallel_tool_calls)

    @property
    def uses_tools(self) -> bool:
        """Tools are offered, or the conversation holds earlier calls: it cannot be kept as plain
        question-and-answer history, and the worker reads it whole (see `transcript`)."""
        return bool(self.tools) or any(m.role == "tool" or m.tool_calls for m in self.messages)

    def transcript(self) -> list[dict[str, Any]]:
        """The conversation after its system messages, as the models' chat templates read it:
        calls with their arguments as JSON objects, tool results with their function's name."""
        names: dict[str, str] = {}
        out: list[dict[str, Any]] = []
        for message in self.messages:
            if message.role in ("system", "developer"):
                continue
            entry: dict[str, Any] = {"role": message.role, "content": message.text()}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.parsed()},
                    }
                    for call in message.tool_calls
                ]
                names.update((call.id, call.function.name) for call in message.tool_calls)
            if message.role == "tool":
                assert message.tool_call_id is not None  # checked with the messages
                entry["tool_call_id"] = message.tool_call_id
                entry["name"] = names[message.tool_call_id]
            out.append(entry)
        return out

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
    # Ours: where the passages of the request's `documents` came from (absent without them).
    sources: list[Source] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ai_assistant"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request, read so that a malformed one is told what is wrong with it."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(max_length=128)]
    # Text, texts, or token ids, as OpenAI's API takes them (its own limits: 2,048 inputs).
    input: (
        Annotated[str, Field(min_length=1, max_length=100_000)]
        | Annotated[list[Annotated[str, Field(max_length=100_000)]], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1, max_length=100_000)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=2048)]
    )
    encoding_format: Literal["float", "base64"] = "float"
    # Ours: what the texts are to the document embedder (e5 reads questions and passages each with
    # its prefix; "query" is its advice for texts compared with each other). A remote server ignores it.
    input_type: Literal["query", "passage"] = "query"
    user: Annotated[str | None, Field(max_length=64)] = None

    def texts(self, max_inputs: int, max_chars: int) -> list[str]:
        """The texts, within this server's bounds (a ValueError that says which one otherwise)."""
        if isinstance(self.input, str):
            texts = [self.input]
        elif all(isinstance(item, str) for item in self.input):
            texts = [str(item) for item in self.input]
        else:
            raise ValueError("input: token ids are not taken here (they are another model's); send text")
        if len(texts) > max_inputs:
            raise ValueError(f"input: at most {max_inputs} texts in one request; send the rest in another")
        if any(not text.strip() for text in texts):
            raise ValueError("input: a text is empty")
        if sum(len(text) for text in texts) > max_chars:
            raise ValueError(f"input: the texts are longer than {max_chars} characters in all; send fewer")
        return texts


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    # Floats, or with `encoding_format: base64` the little-endian float32 bytes in base64.
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
