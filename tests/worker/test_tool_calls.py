"""Tool calls as a local model writes them: the grammars that hold them to the offered functions,
reading them out of an answer that comes in pieces, and the forms a small model really writes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared.tools import ToolCall, ToolChoice, ToolFunction, ToolSpec
from tests.conftest import TINY_MODEL
from tests.grammar_helpers import grammar_accepts
from worker.llama_native import NativeModel
from worker.tool_calls import (
    MAX_CALLS,
    ToolCallBroken,
    answer_in_words,
    bare_begun,
    bare_grammar,
    call_shape,
    calls_grammar,
    repeats_answered,
    split_answer,
)

WEATHER = ToolFunction(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
)
TIME = ToolFunction(
    name="get_time", parameters={"type": "object", "properties": {"city": {"type": "string"}}}
)
SPEC = ToolSpec(functions=[WEATHER, TIME])


@pytest.fixture(scope="module")
def model() -> Iterator[NativeModel]:
    native = NativeModel(TINY_MODEL)
    yield native
    native.close()


def _pieces(text: str, size: int = 3) -> Iterator[str]:
    """The answer in small pieces, as the engine hands it over."""
    return (text[n : n + size] for n in range(0, len(text), size))


def _split(text: str, spec: ToolSpec = SPEC, opened: bool = False) -> list[str | ToolCall]:
    return list(split_answer(_pieces(text), spec, opened))


def test_the_calls_grammar_holds_names_and_arguments_to_the_functions(model: NativeModel) -> None:
    grammar = calls_grammar(SPEC)
    call = '\n{"name": "get_weather", "arguments": {"city": "Kazan", "unit": "c"}}\n</tool_call>'
    assert grammar_accepts(model, grammar, call)
    assert grammar_accepts(model, grammar, '{"name": "get_time", "arguments": {}}</tool_call>')
    # A function not offered, an argument outside its enum, a call left open.
    assert not grammar_accepts(model, grammar, '{"name": "get_stock", "arguments": {}}</tool_call>')
    assert not grammar_accepts(model, grammar, call.replace('"c"', '"kelvin"'))
    assert not grammar_accepts(model, grammar, call.removesuffix("</tool_call>"))
    # One call unless the request allows more; then at most MAX_CALLS.
    assert not grammar_accepts(model, grammar, call + "\n<tool_call>" + call)
    parallel = calls_grammar(SPEC.model_copy(update={"parallel": True}))
    assert grammar_accepts(model, parallel, call + "\n<tool_call>" + call)
    assert grammar_accepts(model, parallel, call + ("\n<tool_call>" + call) * (MAX_CALLS - 1))
    assert not grammar_accepts(model, parallel, call + ("\n<tool_call>" + call) * MAX_CALLS)
    # A named function is the only one that may be called.
    named = calls_grammar(SPEC.model_copy(update={"choice": ToolChoice.FUNCTION, "name": "get_time"}))
    assert grammar_accepts(model, named, '{"name": "get_time", "arguments": {"city": "Oslo"}}</tool_call>')
    assert not grammar_accepts(model, named, call)


def test_the_bare_grammar_takes_the_forms_small_models_write(model: NativeModel) -> None:
    grammar = bare_grammar(SPEC)
    body = '{"name": "get_weather", "arguments": {"city": "Москва"}}'
    for text in (body, f"```json\n{body}\n```", f"```\n{body}\n```", "{" + body + "}"):
        assert grammar_accepts(model, grammar, text), text
    assert not grammar_accepts(model, grammar, f"```json\n{body}\n``` and then some words")
    assert not grammar_accepts(model, grammar, body.replace("get_weather", "get_joke"))


@pytest.mark.parametrize(
    ("text", "begun"),
    [
        ("", None),
        ("```", None),
        ('```json\n{\n  "na', None),
        ('{"name": "get_', None),
        ('```json\n{\n  "name": "get_weather"', True),
        ('{{"name": "get_time"', True),
        ('{"name": "get_joke"', False),
        ("Hello", False),
        ("Привет! ```json", False),
        ('{"city": "Moscow"}', False),
    ],
)
def test_an_answer_is_known_to_be_a_bare_call_once_it_names_an_offered_function(
    text: str, begun: bool | None
) -> None:
    assert bare_begun(text, SPEC) is begun


def test_words_pass_through_and_calls_come_last() -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    out = _split(text)
    assert "".join(p for p in out if isinstance(p, str)) == "Let me check.\n"
    [call] = [p for p in out if isinstance(p, ToolCall)]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})
    assert call.id.startswith("call_")

    # Words that only look like the start of the opening for a while are all given back.
    assert "".join(str(p) for p in _split("a <tool and 2 < 3, <tool_ca")) == "a <tool and 2 < 3, <tool_ca"
    assert "".join(str(p) for p in _split("Привет, как дела?")) == "Привет, как дела?"


def test_a_bare_call_is_a_call_and_words_that_began_like_one_are_words() -> None:
    [call] = _split('```json\n{\n  "name": "get_time",\n  "arguments": {"city": "Lima"}\n}\n```')
    assert isinstance(call, ToolCall) and call.name == "get_time"
    [call] = _split('{{"name": "get_weather", "arguments": {"city": "Rome"}}}')
    assert isinstance(call, ToolCall) and json.loads(call.arguments) == {"city": "Rome"}
    text = '{"name": "get_weather", "note": "not a call after all"}'
    assert "".join(str(p) for p in _split(text)) == text


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("", None),
        ('{"na', None),
        ('```json\n{\n  "name": "ad', None),
        ('{"name": "add"', True),
        ('{{"name": "get_joke", "arg', True),
        ('{"name": 5', False),
        ("The answer is 4.", False),
        ('{"city": "Moscow"}', False),
    ],
)
def test_a_bare_call_to_any_function_is_held_back_until_the_answer_is_whole(
    text: str, shape: bool | None
) -> None:
    assert call_shape(text) is shape


def test_a_call_to_a_function_nobody_offered_is_answered_again_in_words() -> None:
    """Asked "what is 2+2?" with weather tools, the 1.5B model writes a call to `add`: it is held
    back (never streamed as words) and comes back as a call the caller knows to refuse."""
    out = _split('```json\n{\n  "name": "add",\n  "arguments": {"a": 2, "b": 2}\n}\n```')
    [invented] = out
    assert isinstance(invented, ToolCall) and invented.name == "add"
    assert answer_in_words([invented], SPEC, [{"role": "user", "content": "What is 2+2?"}])
    fair = ToolCall.new("get_time", {"city": "Oslo"})
    assert not answer_in_words([fair], SPEC, [{"role": "user", "content": "Time in Oslo?"}])
    assert not answer_in_words([], SPEC, [{"role": "user", "content": "Hi"}])


def test_a_required_call_is_read_from_the_answer_the_opening_began() -> None:
    calls = _split('\n{"name": "get_time", "arguments": {}}\n</tool_call>', opened=True)
    assert [c.name for c in calls if isinstance(c, ToolCall)] == ["get_time"]
    # Twice the same call is made once; two different ones are both made.
    same = '{"name": "get_time", "arguments": {"city": "Oslo"}}</tool_call>'
    assert len(_split(same + "<tool_call>" + same, opened=True)) == 1
    other = same.replace("Oslo", "Rome")
    assert len(_split(same + "<tool_call>" + other, opened=True)) == 2


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_time", "arguments": {"city": "Os',
        '{"name": "get_stock", "arguments": {}}</tool_call>',
        "",
    ],
    ids=["cut-off", "not-offered", "empty"],
)
def test_a_broken_call_is_a_clear_failure(text: str) -> None:
    with pytest.raises(ToolCallBroken) as broken:
        _split(text, opened=True)
    assert "max_tokens" in broken.value.user_message


def test_a_call_repeated_after_its_result_is_told_apart() -> None:
    asked = {"role": "user", "content": "Weather in Oslo?"}
    made = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
            }
        ],
    }
    result = {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "-5"}
    again = ToolCall.new("get_weather", {"city": "Oslo"})
    elsewhere = ToolCall.new("get_weather", {"city": "Rome"})
    assert repeats_answered([again], [asked, made, result])
    assert not repeats_answered([elsewhere], [asked, made, result])
    assert not repeats_answered([again, elsewhere], [asked, made, result])
    # Not answered yet, or answered before the user spoke again: a fair call.
    assert not repeats_answered([again], [asked, made])
    assert not repeats_answered([again], [asked, made, result, {"role": "user", "content": "And now?"}])
    assert not repeats_answered([], [asked, made, result])
