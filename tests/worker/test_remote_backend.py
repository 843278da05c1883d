"""LLM_BACKEND=openai: the worker answers through an OpenAI-compatible server.

The server is llama-cpp-python's own (`python -m llama_cpp.server`) with the bundled model, on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from stack.redis_server import free_port
from tests.conftest import TINY_MODEL, start_worker_process, wait_for, worker_env
from tests.helpers import wait_final as _final
from worker.llm import words
from worker.remote_llm import RemoteModelError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(TINY_MODEL),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture
def remote_worker(
    tmp_path: Path, db_url: str, queue_settings: Any
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(base_url: str, **settings: str) -> subprocess.Popen[bytes]:
        env = worker_env(
            db_url,
            queue_settings,
            LLM_BACKEND="openai",
            OPENAI_BASE_URL=base_url,
            OPENAI_MODEL="smollm2-remote",
            OPENAI_API_KEY="sk-local",
            **settings,
        )
        process = start_worker_process("worker", env, tmp_path / f"remote-{len(processes)}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_answers_stream_from_the_remote_server_with_history(
    client: TestClient, llama_server: str, remote_worker: Callable[..., Any]
) -> None:
    remote_worker(llama_server, MAX_TOKENS="40", TEMPERATURE="0")
    first = client.post("/api/chat", json={"user_id": "r", "text": "Hi! My name is Olga."}).json()["task_id"]
    second = client.post("/api/chat", json={"user_id": "r", "text": "What is my name?"}).json()["task_id"]

    partial = wait_for(lambda: client.get(f"/api/status/{first}").json()["partial_text"], timeout=60)
    a, b = _final(client, first), _final(client, second)

    assert isinstance(partial, str) and partial
    assert a["status"] == b["status"] == "finished", (a, b)
    assert a["answer"].strip() and b["answer"].strip()
    assert a["model"] == "smollm2-remote"
    assert a["usage"]["completion_tokens"] > 0
    # The second request carried the first exchange.
    assert b["usage"]["prompt_tokens"] > a["usage"]["prompt_tokens"] + 5


# Prompts that usually make the small model write at length. Its greedy answer still depends on
# what the server evaluated before, so a prompt that happens to get a short answer is replaced.
LONG_ANSWER_PROMPTS = [
    "Count from 1 to 400, separated by commas.",
    "Write a very long story about a dragon who learns to bake bread.",
    "List one hundred animals, one per line.",
]


def _partial_text(client: TestClient, task_id: str) -> str | None:
    text: str | None = client.get(f"/api/status/{task_id}").json()["partial_text"]
    return text


def test_cancel_stops_the_remote_generation(
    client: TestClient, llama_server: str, remote_worker: Callable[..., Any]
) -> None:
    remote_worker(llama_server, MAX_TOKENS="1500", TEMPERATURE="0")
    for n, prompt in enumerate(LONG_ANSWER_PROMPTS):
        task_id = client.post("/api/chat", json={"user_id": f"c{n}", "text": prompt}).json()["task_id"]
        wait_for(partial(_partial_text, client, task_id), timeout=60)
        asked = time.monotonic()
        client.post(f"/api/tasks/{task_id}/cancel")

        result = _final(client, task_id, timeout=10)
        stopped_by_itself = result["finish_reason"] == "stop" and result["usage"]["completion_tokens"] < 100
        if result["status"] == "finished" and stopped_by_itself:
            continue  # the answer was over before the cancel could act: try a longer one
        assert result["status"] == "canceled", (result["answer"][-200:], result["usage"])
        assert time.monotonic() - asked < 3
        assert result["usage"]["completion_tokens"] < 1500
        return
    pytest.fail("the model gave only short answers; no cancel could be tried")


def test_an_unreachable_server_fails_the_task_clearly(
    client: TestClient, remote_worker: Callable[..., Any]
) -> None:
    remote_worker(f"http://127.0.0.1:{free_port()}/v1")
    task_id = client.post("/api/chat", json={"user_id": "d", "text": "hello?"}).json()["task_id"]

    result = _final(client, task_id, timeout=30)

    assert result["status"] == "failed"
    assert result["error"] == RemoteModelError().user_message
    assert result["finish_reason"] == "model_unavailable"
    # The worker is still there for the next message.
    next_id = client.post("/api/chat", json={"user_id": "d", "text": "again?"}).json()["task_id"]
    assert _final(client, next_id, timeout=30)["status"] == "failed"


def test_server_errors_and_error_chunks_are_reported() -> None:
    from shared.config import ModelSettings
    from worker.llm import Sampling
    from worker.remote_llm import OpenAIChatModel

    settings = ModelSettings(_env_file=None, llm_backend="openai")
    messages = [{"role": "user", "content": "x"}]
    for response in (
        httpx.Response(500, text="boom"),
        httpx.Response(200, text='data: {"error": {"message": "overloaded"}}\n\n'),
    ):
        model = OpenAIChatModel(settings, transport=httpx.MockTransport(lambda _r, resp=response: resp))
        with pytest.raises(RemoteModelError, match=r"500|overloaded"):
            list(model.generate(model.render_chat(messages), 5, lambda: False, Sampling(0.7, 0.9)))


def test_a_silent_server_times_out_clearly(client: TestClient, remote_worker: Callable[..., Any]) -> None:
    import socket
    import threading

    # A server that accepts the connection and then never says a word.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        remote_worker(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", OPENAI_TIMEOUT_SECONDS="1")
        task_id = client.post("/api/chat", json={"user_id": "t", "text": "anyone?"}).json()["task_id"]
        started = time.monotonic()
        result = _final(client, task_id, timeout=30)
    finally:
        for conn in accepted:
            conn.close()
        listener.close()

    assert result["status"] == "failed"
    assert result["finish_reason"] == "model_unavailable"
    assert time.monotonic() - started < 15


def test_the_requests_own_options_go_on_to_the_server() -> None:
    """Stop sequences, penalties and the response format are the remote server's to enforce."""
    from shared.config import ModelSettings
    from worker.llm import Sampling
    from worker.remote_llm import OpenAIChatModel

    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(
            200, text='data: {"choices": [{"delta": {"content": "{}"}}]}\n\ndata: [DONE]\n\n'
        )

    model = OpenAIChatModel(
        ModelSettings(_env_file=None, llm_backend="openai"), transport=httpx.MockTransport(answer)
    )
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    sampling = Sampling(
        0.5,
        0.9,
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=-0.25,
        response_format=json.dumps(response_format),
        stop=("END", "\n\n"),
    )
    assert (
        "".join(
            words(
                model.generate(
                    model.render_chat([{"role": "user", "content": "x"}]), 5, lambda: False, sampling
                )
            )
        )
        == "{}"
    )
    (body,) = sent
    assert body["stop"] == ["END", "\n\n"]
    assert (body["presence_penalty"], body["frequency_penalty"], body["seed"]) == (0.5, -0.25, 3)
    assert body["response_format"] == response_format
    # A plain request sends none of them.
    list(
        model.generate(
            model.render_chat([{"role": "user", "content": "x"}]), 5, lambda: False, Sampling(0.5, 0.9)
        )
    )
    assert not {"stop", "presence_penalty", "frequency_penalty", "response_format", "tools"} & set(sent[-1])


def test_tools_go_on_to_the_server_and_its_streamed_calls_come_back_whole() -> None:
    """The server gets the tools, the choice and the conversation's calls in OpenAI's shape
    (arguments as JSON text); the calls it streams in pieces come back as whole calls."""
    from shared.config import ModelSettings
    from shared.tools import ToolCall, ToolChoice, ToolFunction, ToolSpec
    from worker.llm import Sampling
    from worker.remote_llm import OpenAIChatModel, RemoteModelError

    sent: list[dict[str, Any]] = []
    deltas: list[dict[str, Any]] = [
        {"content": "Checking."},
        {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_time"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Осло"}'}}]},
    ]
    stream = "".join(f"data: {json.dumps({'choices': [{'delta': d}]})}\n\n" for d in deltas)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, text=stream + "data: [DONE]\n\n")

    model = OpenAIChatModel(
        ModelSettings(_env_file=None, llm_backend="openai"), transport=httpx.MockTransport(answer)
    )
    function = ToolFunction(
        name="get_time", parameters={"type": "object", "properties": {"city": {"type": "string"}}}
    )
    spec = ToolSpec(functions=[function], choice=ToolChoice.FUNCTION, name="get_time", parallel=False)
    earlier = {"id": "c0", "type": "function", "function": {"name": "get_time", "arguments": {"city": "Рим"}}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Time in Rome, then Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [earlier]},
        {"role": "tool", "tool_call_id": "c0", "name": "get_time", "content": "12:00"},
    ]
    out = list(
        model.generate(
            model.render_chat(messages, spec.definitions()), 50, lambda: False, Sampling(0.0, 1.0, tools=spec)
        )
    )
    assert out[0] == "Checking."
    calls = out[1:]
    assert all(isinstance(call, ToolCall) for call in calls)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls if isinstance(c, ToolCall)] == [
        ("call_a", "get_time", {"city": "Осло"}),
        ("call_b", "get_time", {}),
    ]
    (body,) = sent
    assert body["tools"] == spec.definitions()
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Рим"}'
    assert "name" not in body["messages"][2]

    # A call to a function that was not offered is the server's failure, not a call.
    deltas[1]["tool_calls"][0]["function"]["name"] = "rm_rf"
    stream = "".join(f"data: {json.dumps({'choices': [{'delta': d}]})}\n\n" for d in deltas)
    with pytest.raises(RemoteModelError):
        list(model.generate(model.render_chat(messages), 50, lambda: False, Sampling(0.0, 1.0, tools=spec)))


def test_a_json_answer_through_a_remote_server_that_enforces_it(
    client: TestClient, llama_server: str, remote_worker: Callable[..., Any]
) -> None:
    """A /v1 request for a JSON object reaches the remote server, whose own grammar holds the answer."""
    remote_worker(llama_server, MAX_TOKENS="300")
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "Describe a cat as JSON."}],
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "max_tokens": 300,
        },
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    assert isinstance(json.loads(choice["message"]["content"]), dict)
