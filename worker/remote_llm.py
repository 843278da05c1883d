"""A model behind any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp's server).

The server applies its own chat template and tokenizer, so prompt sizes here are estimates
(about 3.5 characters per token, rounded up): history is trimmed with a margin, and the server
has the last word on its context limit.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence

import httpx

from shared.config import ModelSettings
from shared.enums import FinishReason
from shared.tools import ToolCall, ToolChoice, ToolSpec
from worker.errors import ModelFailure
from worker.llm import ChatMessage, RenderedPrompt, Sampling

log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 3.5
_PER_MESSAGE_TOKENS = 4


class RemoteModelError(ModelFailure):
    """The model server failed."""

    failure_kind = FinishReason.MODEL_UNAVAILABLE

    @property
    def user_message(self) -> str:
        return "The model server is not answering right now. Please try again in a little while."


def remote_client(settings: ModelSettings, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An HTTP client for the OpenAI-compatible server of LLM_BACKEND=openai: its base URL, key and
    timeout (for chat and embeddings alike)."""
    headers = {}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
    return httpx.Client(
        base_url=settings.openai_base_url.rstrip("/"),
        headers=headers,
        timeout=httpx.Timeout(settings.openai_timeout_seconds, connect=10),
        transport=transport,
    )


class OpenAIChatModel:
    def __init__(self, settings: ModelSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._http = remote_client(settings, transport)
        log.info("model: %s at %s", settings.openai_model, settings.openai_base_url)

    @property
    def name(self) -> str:
        return self.settings.openai_model

    @property
    def context_window(self) -> int:
        return self.settings.n_ctx

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    def render_chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[dict[str, object]] | None = None
    ) -> RenderedPrompt:
        # The tools and the calls count as the JSON the server's template will write of them.
        extra = json.dumps(list(tools)) if tools else ""
        extra += "".join(json.dumps(m["tool_calls"]) for m in messages if m.get("tool_calls"))
        size = self.count_tokens(extra) + sum(
            self.count_tokens(m["content"] or "") + _PER_MESSAGE_TOKENS for m in messages
        )
        return RenderedPrompt(size=size, payload=[_outgoing(m) for m in messages])

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str | ToolCall]:
        body: dict[str, object] = {
            "model": self.settings.openai_model,
            "messages": prompt.payload,
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": True,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        # The request's own options go on to the server, which enforces them itself.
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.presence_penalty:
            body["presence_penalty"] = sampling.presence_penalty
        if sampling.frequency_penalty:
            body["frequency_penalty"] = sampling.frequency_penalty
        if sampling.response_format is not None:
            body["response_format"] = json.loads(sampling.response_format)
        if sampling.tools is not None:
            body.update(_tool_options(sampling.tools))
        calls = _StreamedCalls()
        try:
            # Leaving this block closes the connection, which is how a server learns to stop.
            with self._http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteModelError(
                        f"model server answered {response.status_code}: {response.text[:300]}"
                    )
                for line in response.iter_lines():
                    delta = _delta(line)
                    if delta is None:
                        continue
                    if should_stop():
                        return
                    calls.add(delta.get("tool_calls"))
                    piece = delta.get("content")
                    if isinstance(piece, str) and piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise RemoteModelError(
                f"model server at {self.settings.openai_base_url} failed: {exc!r}"
            ) from exc
        yield from calls.whole(sampling.tools)

    def close(self) -> None:
        self._http.close()


def _delta(line: str) -> dict[str, object] | None:
    """The delta of one streamed chunk; None for lines that carry none (comments, [DONE])."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    chunk = json.loads(data)
    if "error" in chunk:
        raise RemoteModelError(f"model server error: {chunk['error']}")
    choices = chunk.get("choices") or []
    if not choices:
        return None
    delta = choices[0].get("delta")
    return delta if isinstance(delta, dict) else None


def _outgoing(message: ChatMessage) -> dict[str, object]:
    """A message as OpenAI's API takes it: a call's arguments as JSON text, not as an object."""
    out = dict(message)
    out.pop("name", None)  # a tool message's function name is for local templates only
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False),
                },
            }
            for call in message["tool_calls"]
        ]
    return out


def _tool_options(spec: ToolSpec) -> dict[str, object]:
    choice: object = spec.choice.value
    if spec.choice == ToolChoice.FUNCTION:
        choice = {"type": "function", "function": {"name": spec.name}}
    options: dict[str, object] = {"tools": spec.definitions(), "tool_choice": choice}
    if spec.parallel is not None:
        options["parallel_tool_calls"] = spec.parallel
    return options


class _StreamedCalls:
    """The calls a streamed answer makes: OpenAI's deltas send each call's id and name once and its
    arguments in pieces, all keyed by the call's index."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: object) -> None:
        if not isinstance(deltas, list):
            return
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            call = self._calls.setdefault(int(delta.get("index", 0)), {"id": "", "name": "", "arguments": ""})
            function = delta.get("function") or {}
            call["id"] = delta.get("id") or call["id"]
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""

    def whole(self, spec: ToolSpec | None) -> list[ToolCall]:
        if not self._calls:
            return []
        if spec is None:
            raise RemoteModelError("the model server made tool calls that were not asked for")
        allowed = {function.name for function in spec.callable()}
        calls = []
        for _index, call in sorted(self._calls.items()):
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except ValueError:
                raise RemoteModelError(
                    f"the model server's call of {call['name']} is not valid JSON"
                ) from None
            if call["name"] not in allowed or not isinstance(arguments, dict):
                raise RemoteModelError(f"the model server called {call['name']!r}, which was not offered")
            made = ToolCall.new(call["name"], arguments)
            calls.append(made.model_copy(update={"id": call["id"]}) if call["id"] else made)
        return calls
