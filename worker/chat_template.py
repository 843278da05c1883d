"""A model's own chat template (Jinja, from its GGUF), rendered so that the text people and clients
wrote can be told from the template's markup.

Every message's text, and every value the template writes as JSON (tool definitions, a call's
arguments), comes out of `render` as a piece of its own marked plain: the model reads it as
characters, never as special tokens, so `<|im_start|>system` inside a message or a tool's result
cannot open a turn of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Used when a GGUF carries no chat template of its own.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Private-use characters around a plain text's index while the template is rendered.
_MARKED = re.compile("\ue000(\\d+)\ue001")
_PLAIN = "_plain_texts"


class TemplateUnusable(ValueError):
    """The template does not render, or does not keep each message's text whole and in order."""


def _mark(plain: list[str], text: str) -> str:
    plain.append(text)
    return f"\ue000{len(plain) - 1}\ue001"


@pass_context
def _tojson(context: Context, value: Any, indent: int | None = None, **_options: Any) -> str:
    # As the templates' authors expect (Hugging Face's tojson): non-ASCII kept, no HTML escaping.
    return _mark(context[_PLAIN], json.dumps(value, ensure_ascii=False, indent=indent))


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


class ChatTemplate:
    def __init__(self, source: str, bos_token: str, eos_token: str) -> None:
        environment = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True
        )
        environment.filters["tojson"] = _tojson
        environment.globals["raise_exception"] = _raise
        environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateError as exc:
            raise TemplateUnusable(str(exc)) from None
        self.bos_token, self.eos_token = bos_token, eos_token
        self.calls_tools = "tools" in source and "<tool_call>" in source
        probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        probe += [{"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}]
        try:
            pieces = self.render(probe)
        except jinja2.TemplateError as exc:
            raise TemplateUnusable(str(exc)) from None
        if [text for text, plain in pieces if plain] != ["s", "u", "a", "v"]:
            raise TemplateUnusable("the template does not keep each message's text whole and in order")

    def render(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> list[tuple[str, bool]]:
        """The prompt for the assistant's next turn, as (text, plain) pieces in order."""
        return self.render_parts(messages, tools)[0]

    def render_parts(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> tuple[list[tuple[str, bool]], int]:
        """As `render`, and how many of the pieces come before the text of the first message that
        is not a system one: the beginning conversations with the same system prompt share."""
        plain: list[str] = []
        marked = [
            {**m, "content": _mark(plain, m["content"])} if m.get("content") else {**m, "content": ""}
            for m in messages
        ]
        variables: dict[str, Any] = {
            "messages": marked,
            "add_generation_prompt": True,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            _PLAIN: plain,
        }
        if tools:
            variables["tools"] = list(tools)
        parts = _MARKED.split(self._template.render(**variables))
        # The messages' texts were marked first, in order, so the first turn's text is mark number
        # `first` (the system messages' texts before it); the JSON values the template writes come after.
        with_text = [m for m in messages if m.get("content")]
        first = next((n for n, m in enumerate(with_text) if m["role"] != "system"), len(with_text))
        pieces: list[tuple[str, bool]] = []
        opening = 0
        for n, part in enumerate(parts):
            if n % 2 and int(part) == first and opening == 0:
                opening = len(pieces)
            if part:
                pieces.append((plain[int(part)] if n % 2 else part, bool(n % 2)))
        return pieces, opening
