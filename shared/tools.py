"""Tool calling as the gateway and the workers exchange it: the tools a request offers, the choice
it leaves the model, and the calls an answer makes.

The gateway checks a request's tools and stores a `ToolSpec` with the task (JSON); the worker
renders the tools into the model's own template, holds the calls' arguments to each function's
schema while they are written, and stores the answer's `ToolCall`s for the gateway to return.
"""

from __future__ import annotations

import enum
import json
import secrets
from typing import Annotated, Any

from pydantic import BaseModel, Field

# OpenAI's rule for a function's name; it also keeps names out of a template's markup.
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_TOOLS = 64
# A call's arguments as stored and returned; longer ones could not come from one answer anyway.
MAX_ARGUMENT_CHARS = 100_000


class ToolChoice(enum.StrEnum):
    """What the model may do with the tools (OpenAI's `none` stores no tools at all)."""

    AUTO = "auto"  # answer in words or call tools, as it judges
    REQUIRED = "required"  # call at least one tool
    FUNCTION = "function"  # call the function named in `ToolSpec.name`


class ToolFunction(BaseModel):
    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    description: Annotated[str, Field(max_length=4000)] | None = None
    # JSON Schema of the arguments (an object); checked to be enforceable at the gateway.
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def definition(self) -> dict[str, Any]:
        """As OpenAI's requests and the models' chat templates write a tool."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        return {"type": "function", "function": function}


class ToolSpec(BaseModel):
    """The tools one answer may call, kept with its task."""

    functions: Annotated[list[ToolFunction], Field(min_length=1, max_length=MAX_TOOLS)]
    choice: ToolChoice = ToolChoice.AUTO
    name: str | None = None  # with ToolChoice.FUNCTION
    # More than one call in an answer: as the request asked; None when it did not say (a local
    # model then makes one, a remote server does as it does by default).
    parallel: bool | None = None

    def callable(self) -> list[ToolFunction]:
        """The functions this answer may call (one, when the request named it)."""
        if self.choice == ToolChoice.FUNCTION:
            return [f for f in self.functions if f.name == self.name]
        return self.functions

    def definitions(self) -> list[dict[str, Any]]:
        return [f.definition() for f in self.functions]


class ToolCall(BaseModel):
    """One call an answer makes: `arguments` is JSON text, as OpenAI returns it."""

    id: str
    name: str
    arguments: str

    @classmethod
    def new(cls, name: str, arguments: Any) -> ToolCall:
        text = json.dumps(arguments, ensure_ascii=False)
        return cls(id=f"call_{secrets.token_hex(12)}", name=name, arguments=text)


def dump_calls(calls: list[ToolCall]) -> str:
    return json.dumps([call.model_dump() for call in calls], ensure_ascii=False)


def load_calls(text: str | None) -> list[ToolCall]:
    return [ToolCall.model_validate(item) for item in json.loads(text)] if text else []
