"""The OpenAI-compatible API, driven by the official `openai` client against the served gateway."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from shared.config import DocumentSettings, ModelSettings, embedding_model
from tests.conftest import API_KEY, ServedGateway

pytestmark = pytest.mark.slow


@pytest.fixture
def client(served_gateway: ServedGateway) -> OpenAI:
    return OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def test_models_lists_the_served_model(client: OpenAI) -> None:
    models = client.models.list()
    # None named: the default this machine's memory picks, by its file's name.
    settings = ModelSettings(_env_file=None)
    # And the document embedder where this machine's memory has it on (tests/api/test_embeddings.py).
    embedder = embedding_model(settings, DocumentSettings(_env_file=None))
    assert [m.id for m in models.data] == [settings.display_name(), *([embedder] if embedder else [])]
    assert models.data[0].id.startswith("qwen2.5-coder-")


def test_a_completion_sees_the_whole_conversation(client: OpenAI, fake_workers: Callable[..., Any]) -> None:
    fake_workers()
    response = client.chat.completions.create(
        model="anything",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": "second"},
        ],
        max_tokens=50,
        temperature=0.2,
    )

    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == "Answer 2 to 'second' (saw 1 answers)"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "fake-model"
    assert response.usage is not None and response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streaming_arrives_in_pieces(client: OpenAI, fake_workers: Callable[..., Any]) -> None:
    fake_workers(FAKE_TOKEN_DELAY="0.12", PARTIAL_INTERVAL_SECONDS="0.05")
    pieces, reasons = [], []
    for chunk in client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "stream"}], stream=True
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            reasons.append(chunk.choices[0].finish_reason)

    assert len([p for p in pieces if p]) >= 3
    assert "".join(pieces) == "Answer 1 to 'stream' (saw 0 answers)"
    assert reasons[-1] == "stop"


def test_max_tokens_ends_with_length(client: OpenAI, fake_workers: Callable[..., Any]) -> None:
    fake_workers(FAKE_ENDLESS="1")
    response = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "go"}], max_tokens=5
    )
    assert response.choices[0].finish_reason == "length"


def test_closing_the_stream_cancels_the_answer(
    client: OpenAI, fake_workers: Callable[..., Any], served_gateway: ServedGateway
) -> None:
    fake_workers(
        FAKE_TOKEN_DELAY="0.05", FAKE_ENDLESS="1", MAX_TOKENS="100000", PARTIAL_INTERVAL_SECONDS="0.05"
    )
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "forever"}], stream=True, user="closer"
    )
    received = ""
    for chunk in stream:
        received += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        if "more more" in received:
            break
    stream.close()

    def latest() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(
            f"{served_gateway.url}/api/users/openai:closer/latest-task",
            params={"chat_id": "openai"},
            headers={"X-API-Key": API_KEY},
        ).json()
        return body

    deadline = time.monotonic() + 10
    while latest()["status"] != "canceled":
        assert time.monotonic() < deadline, latest()
        time.sleep(0.1)
    assert latest()["answer"].startswith("Answer 1 to 'forever'")


def test_errors_come_in_openai_shape(client: OpenAI, served_gateway: ServedGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as auth:
        OpenAI(
            base_url=f"{served_gateway.url}/v1", api_key="wrong-key-wrong-key", max_retries=0
        ).models.list()
    assert auth.value.status_code == 401
    assert auth.value.code == "invalid_api_key"

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=[{"role": "assistant", "content": "hi"}])
    assert "last message must come from the user" in bad.value.message

    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 5000}])
    assert too_long.value.code == "string_above_max_length"

    raw = httpx.post(
        f"{served_gateway.url}/v1/chat/completions",
        json={"model": "m", "messages": []},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert raw.status_code == 400
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}
    assert raw.json()["error"]["type"] == "invalid_request_error"


def test_a_prompt_beyond_the_window_is_context_length_exceeded(
    client: OpenAI, fake_workers: Callable[..., Any]
) -> None:
    fake_workers()
    # 3,000 emoji: within the 4,000-character limit, but 12 kB of tokens for the fake's 8 kB window.
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "😀" * 3000}])
    assert exc.value.code == "context_length_exceeded"
    assert "too long for this model" in exc.value.message


def test_stop_sequences_end_the_answer_before_them_streamed_or_not(
    client: OpenAI, fake_workers: Callable[..., Any]
) -> None:
    """The fake answers "Answer 1 to 'hello' (saw 0 answers)"; with "to" as a stop the answer is the
    text before it, and a stream never shows a piece of the stop (nor anything after it)."""
    fake_workers(FAKE_TOKEN_DELAY="0.05", PARTIAL_INTERVAL_SECONDS="0.01")
    whole = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello"}], stop=["nothing like it", "to"]
    )
    assert whole.choices[0].message.content == "Answer 1 "
    assert whole.choices[0].finish_reason == "stop"
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello"}], stop="1 t", stream=True
        )
        if chunk.choices
    ]
    assert "".join(pieces) == "Answer "
    # More than four, or empty ones, are refused before anything is queued.
    for stop in (["a", "b", "c", "d", "e"], [""]):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stop=stop)


@pytest.mark.parametrize(
    "asked",
    [
        {"logprobs": True},
        {"functions": [{"name": "weather", "parameters": {"type": "object"}}]},
        {"function_call": "auto"},
    ],
)
def test_options_this_server_cannot_honour_are_refused_not_ignored(
    client: OpenAI, asked: dict[str, Any]
) -> None:
    """An agent must not get a plain answer it would take for the model's own choice: a 400 in
    OpenAI's shape names the option."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_body=asked
        )
    assert next(iter(asked)) in refused.value.message and "not supported" in refused.value.message


def _tool(name: str = "weather", parameters: Any = None) -> dict[str, Any]:
    function = {"name": name, "parameters": parameters or {"type": "object", "properties": {}}}
    return {"type": "function", "function": function}


def _called(arguments: str = "{}") -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


@pytest.mark.parametrize(
    ("asked", "named"),
    [
        ({"tools": [_tool(), _tool()]}, "a name of its own"),
        ({"tools": [_tool("weather now")]}, "tools"),
        ({"tools": [_tool(parameters={"type": "string"})]}, "must be an object schema"),
        (
            {"tools": [_tool(parameters={"type": "object", "properties": {"d": {"format": "date"}}})]},
            "format",
        ),
        ({"tool_choice": "required"}, "no tools to choose from"),
        ({"tools": [_tool()], "tool_choice": {"type": "function", "function": {"name": "time"}}}, "time"),
        ({"tools": [_tool()], "response_format": {"type": "json_object"}}, "not with tools"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "c9", "content": "1"},
                ]
            },
            "earlier tool call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    _called("{oops"),
                    {"role": "tool", "tool_call_id": "c1", "content": "1"},
                ]
            },
            "not valid JSON",
        ),
        ({"messages": [{"role": "user", "content": "hi"}, _called()]}, "last message"),
    ],
    ids=[
        "same-name",
        "bad-name",
        "not-object",
        "unenforceable",
        "choice-without-tools",
        "unknown-choice",
        "with-response-format",
        "unanswered-result",
        "bad-arguments",
        "ends-with-call",
    ],
)
def test_tools_the_model_could_not_be_held_to_are_refused_before_queueing(
    client: OpenAI, asked: dict[str, Any], named: str
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **asked}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="m", **body)
    assert named in refused.value.message


def test_harmless_defaults_of_those_options_are_accepted(
    client: OpenAI, fake_workers: Callable[..., Any]
) -> None:
    fake_workers()
    answer = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hello"}],
        extra_body={"tool_choice": "none", "response_format": {"type": "text"}, "tools": [], "stop": None},
    )
    assert answer.choices[0].message.content == "Answer 1 to 'hello' (saw 0 answers)"
