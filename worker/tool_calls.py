"""Tool calls as a local model writes them: the format its chat template teaches, the grammar that
holds them to the functions' schemas, and reading them back out of the answer.

Qwen2.5 (and the other models whose templates follow the Hermes convention) answer a call as

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Moscow"}}
    </tool_call>

where `<tool_call>` is one token of the vocabulary. The answer is free until the model writes that
token; from there a grammar holds the rest to one of the offered functions and its arguments to
that function's schema, so a call that comes back always parses and validates. When the request
requires a call, the token is put at the start of the answer and the grammar holds it all.

Small models often write the call as bare JSON instead (measured: Qwen2.5-Coder 1.5B nearly always
answers a weather question with a ```json block naming the function). An answer that begins
`{"name": "<an offered function>"`, fenced or not, is that call: from there a grammar holds it the
same way, and it is returned as a call, not as words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from shared.enums import FinishReason
from shared.json_grammar import grammar_of, literal, schema_rules
from shared.tools import ToolCall, ToolSpec
from worker.errors import ModelFailure

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
# How many calls one answer may make (a small model, once calling, may not stop by itself).
MAX_CALLS = 8
_FENCES = ("```json", "```", "")


class ToolsUnsupported(ModelFailure):
    """The model's chat template has no tool calling in the form this server reads."""

    failure_kind = FinishReason.ERROR

    def __init__(self, model: str) -> None:
        super().__init__(f"model {model} has no tool-calling template")
        self.model = model

    @property
    def user_message(self) -> str:
        return (
            f"The model {self.model} cannot call tools: its chat template has no tool calling. "
            "Use a model that has one (Qwen2.5, for example)."
        )


class ToolCallBroken(ModelFailure):
    """The answer's call is not whole (the token limit cut it) or names no offered function."""

    failure_kind = FinishReason.ERROR

    @property
    def user_message(self) -> str:
        return (
            "The model's tool call was cut off before it was complete; allow more tokens "
            "(max_tokens) and try again."
        )


def _call_rules(spec: ToolSpec) -> list[dict[str, str]]:
    """The rule `call-body`: `{"name": ..., "arguments": ...}` for a function the answer may call,
    with arguments that match its schema; and the rules that come with it."""
    options: list[str] = []
    rule_sets: list[dict[str, str]] = []
    for n, function in enumerate(spec.callable()):
        arguments, rules = schema_rules(function.parameters, prefix=f"f{n}-")
        rule_sets.append(rules)
        name = literal(json.dumps(function.name))
        options.append(f'{name} ws "," ws "\\"arguments\\"" ws ":" ws {arguments}')
    body = f'"{{" ws "\\"name\\"" ws ":" ws ({" | ".join(options)}) ws "}}"'
    return [{"call-body": body}, *rule_sets]


def calls_grammar(spec: ToolSpec) -> str:
    """What may follow the opening token: the calls of one answer (up to `MAX_CALLS`, or one),
    then nothing more."""
    call = f'"\\n"? call-body "\\n"? {literal(CLOSE)}'
    more = f'("\\n"? {literal(OPEN)} call){{0,{MAX_CALLS - 1}}}' if spec.parallel else ""
    return grammar_of(f"call {more}".strip(), {"call": call}, *_call_rules(spec))


def bare_grammar(spec: ToolSpec) -> str:
    """A whole answer that is one call written as bare JSON, fenced or not."""
    # `{{ ... }}`: the form Qwen2.5's template shows in its instructions (its braces doubled).
    root = '"```" "json"? ws call-body ws "```" | call-body | "{" ws call-body ws "}"'
    return grammar_of(root, *_call_rules(spec))


def bare_begun(text: str, spec: ToolSpec) -> bool | None:
    """Whether an answer beginning `text` is a call written as bare JSON: True once it has named
    a function it may call, False once it cannot, None while it still might."""
    compact = "".join(text.split())
    if not compact:
        return None
    forms = [
        f'{opening}{{"name":{json.dumps(f.name)}' for opening in (*_FENCES, "{") for f in spec.callable()
    ]
    if any(compact.startswith(form) for form in forms):
        return True
    return None if any(form.startswith(compact) for form in forms) else False


# The start of an answer that writes a call as bare JSON, whatever function it names (spaces removed).
_SHAPE_OPENINGS = [f'{opening}{{"name":"' for opening in (*_FENCES, "{")]
_SHAPE = re.compile(r'(?:```json|```|\{)?\{"name":"([A-Za-z0-9_-]*)(")?')


def call_shape(text: str) -> bool | None:
    """Whether an answer beginning `text` is written as a bare JSON call to some function, offered
    or not: True once the name is written, False once it cannot be, None while it still might."""
    compact = "".join(text.split())
    if not compact or any(opening.startswith(compact) for opening in _SHAPE_OPENINGS):
        return None
    shape = _SHAPE.match(compact)
    if shape is None:
        return False
    if shape.group(2):
        return True
    return None if shape.end() == len(compact) else False


def split_answer(pieces: Iterator[str], spec: ToolSpec, opened: bool) -> Iterator[str | ToolCall]:
    """The answer's words as they come, then its calls (read once the answer is whole).

    With `opened`, the opening token was put in front of the answer (a call is required).
    Otherwise words are held back only while they could still be the start of a call. An answer
    written whole as a bare call comes back as that call, even to a function that was not offered:
    `answer_in_words` tells the caller to have it answered again."""
    text = OPEN if opened else ""
    calling = opened
    bare: bool | None = None if not opened else False
    for piece in pieces:
        text += piece
        if calling:
            continue
        if bare is None:
            bare = call_shape(text)
        if bare is not False:
            continue
        at = text.find(OPEN)
        if at < 0:
            keep = _partial_tail(text)
            if len(text) > keep:
                yield text[: len(text) - keep]
                text = text[len(text) - keep :]
            continue
        if at > 0:
            yield text[:at]
        text = text[at:]
        calling = True
    if calling:
        yield from parse_calls(text, spec)
    elif bare and (call := parse_bare(text, spec, offered_only=False)) is not None:
        yield call
    elif text:
        yield text


def _partial_tail(text: str) -> int:
    """How many characters at the end of `text` could begin the opening token."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


def parse_calls(text: str, spec: ToolSpec) -> list[ToolCall]:
    """The calls in `text` (which starts at the first opening token)."""
    calls: list[ToolCall] = []
    for block in text.split(OPEN)[1:]:
        body, closed, _rest = block.partition(CLOSE)
        if not closed:
            raise ToolCallBroken("a tool call is not complete")
        call = _call(body, spec)
        if call is None:
            raise ToolCallBroken("a tool call names no function offered, or has no arguments object")
        if not any(made.name == call.name and made.arguments == call.arguments for made in calls):
            calls.append(call)  # the same call twice is made once
    if not calls:
        raise ToolCallBroken("the answer opened a tool call and wrote none")
    return calls


def parse_bare(text: str, spec: ToolSpec, offered_only: bool = True) -> ToolCall | None:
    """The call a whole answer makes as bare JSON; None when it is not one after all (or, with
    `offered_only`, when it calls a function that was not offered)."""
    body = text.strip()
    for fence in _FENCES[:-1]:
        if body.startswith(fence) and body.endswith("```"):
            body = body[len(fence) : -3]
            break
    else:
        if body.startswith("{{") and body.endswith("}}"):
            body = body[1:-1]
    return _call(body, spec, offered_only)


def answer_in_words(calls: list[ToolCall], spec: ToolSpec, transcript: list[dict[str, Any]]) -> bool:
    """Whether an answer's calls should have been words: one calls a function that was not offered
    (a small model asked "what is 2+2?" invents `add`), or they only ask again what the tools have
    already answered."""
    offered = {function.name for function in spec.callable()}
    return any(call.name not in offered for call in calls) or repeats_answered(calls, transcript)


def repeats_answered(calls: list[ToolCall], transcript: list[dict[str, Any]]) -> bool:
    """Whether every one of `calls` was made since the user last spoke, with the same arguments,
    and its result is in the transcript: the answer asks for what it has already been told."""
    since = max((n for n, m in enumerate(transcript) if m["role"] == "user"), default=-1)
    turn = transcript[since + 1 :]
    answered = {m.get("tool_call_id") for m in turn if m["role"] == "tool"}
    made = [
        (call["function"]["name"], call["function"]["arguments"])
        for m in turn
        for call in m.get("tool_calls") or []
        if call["id"] in answered
    ]
    return bool(calls) and all((c.name, json.loads(c.arguments)) in made for c in calls)


def _call(body: str, spec: ToolSpec, offered_only: bool = True) -> ToolCall | None:
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        return None
    name, arguments = call["name"], call["arguments"]
    allowed = {function.name for function in spec.callable()}
    if not isinstance(name, str) or (offered_only and name not in allowed) or not isinstance(arguments, dict):
        return None
    return ToolCall.new(name, arguments)
