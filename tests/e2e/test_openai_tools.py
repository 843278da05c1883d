"""Tool calling through /v1 with the official `openai` client, the served gateway and a real worker
with the default model: an agent's round trip (the call, its result, the answer in words), streamed
and not, a call the request requires by name, and what the gateway refuses before queueing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.conftest import API_KEY, ServedGateway

pytestmark = pytest.mark.slow

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city's name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
]


@pytest.fixture
def client(served_gateway: ServedGateway) -> OpenAI:
    return OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=600)


def _streamed(client: OpenAI, messages: list[Any]) -> tuple[str, list[dict[str, str]], str | None]:
    """A streamed answer's words, its calls joined from their deltas, and its finish reason."""
    text, finish = "", None
    calls: dict[int, dict[str, str]] = {}
    for chunk in client.chat.completions.create(
        model="local", messages=messages, tools=TOOLS, stream=True, temperature=0
    ):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
        finish = choice.finish_reason or finish
    return text, [calls[n] for n in sorted(calls)], finish


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("question", "city"),
    [("Какая сейчас погода в Казани?", "Казан"), ("What's the weather like in Paris right now?", "Paris")],
    ids=["ru", "en"],
)
def test_an_agent_calls_a_tool_and_answers_from_its_result(
    client: OpenAI, real_worker: Callable[..., Path], stream: bool, question: str, city: str
) -> None:
    """The model calls get_weather for the city asked about, with arguments that match the schema;
    given the result, it answers in words that use it."""
    real_worker(MAX_TOKENS="160")
    messages: list[Any] = [{"role": "user", "content": question}]
    if stream:
        text, calls, finish = _streamed(client, messages)
    else:
        completion = client.chat.completions.create(
            model="local", messages=messages, tools=TOOLS, temperature=0
        )
        message = completion.choices[0].message
        text, finish = message.content or "", completion.choices[0].finish_reason
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or []
            if c.type == "function"
        ]
    assert finish == "tool_calls", (text, calls)
    assert [call["name"] for call in calls] == ["get_weather"]
    arguments = json.loads(calls[0]["arguments"])
    assert city.lower() in arguments["city"].lower()
    assert set(arguments) <= {"city", "unit"} and arguments.get("unit", "celsius") in (
        "celsius",
        "fahrenheit",
    )
    assert calls[0]["id"].startswith("call_")

    messages += [
        {
            "role": "assistant",
            "content": text or None,
            "tool_calls": [
                {
                    "id": calls[0]["id"],
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": calls[0]["arguments"]},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": calls[0]["id"],
            "content": json.dumps({"temperature_c": -17, "sky": "snow"}),
        },
    ]
    if stream:
        answer, again, finish = _streamed(client, messages)
    else:
        completion = client.chat.completions.create(
            model="local", messages=messages, tools=TOOLS, temperature=0
        )
        answer = completion.choices[0].message.content or ""
        again = [{"id": call.id} for call in completion.choices[0].message.tool_calls or []]
        finish = completion.choices[0].finish_reason
    assert finish == "stop" and not again, (answer, again)
    assert "17" in answer


def test_a_call_the_request_names_is_made_and_one_it_cannot_is_refused(
    client: OpenAI, real_worker: Callable[..., Path]
) -> None:
    real_worker(MAX_TOKENS="80")
    completion = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Сколько времени сейчас в Токио?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].function.name == "get_time"
    assert set(json.loads(calls[0].function.arguments)) == {"city"}

    # tool_choice "none": the tools are there for the conversation, but the answer is in words.
    completion = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Say hello in French."}],
        tools=TOOLS,
        tool_choice="none",
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None and completion.choices[0].message.content

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_stock_price"}},
        )
    assert "get_stock_price" in refused.value.message


def test_a_question_no_tool_answers_is_answered_in_words(
    client: OpenAI, real_worker: Callable[..., Path]
) -> None:
    """Given weather and time tools, the small model's first try at "what is 2+2?" calls an `add`
    it invented: that is never returned; the answer comes in words."""
    real_worker(MAX_TOKENS="60")
    completion = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "What is 2+2?"}], tools=TOOLS, temperature=0
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert "4" in (choice.message.content or "")
