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


class OpenAIChatModel:
    def __init__(self, settings: ModelSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        headers = {}
        if settings.openai_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
        self._http = httpx.Client(
            base_url=settings.openai_base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(settings.openai_timeout_seconds, connect=10),
            transport=transport,
        )
        log.info("model: %s at %s", settings.openai_model, settings.openai_base_url)

    @property
    def name(self) -> str:
        return self.settings.openai_model

    @property
    def context_window(self) -> int:
        return self.settings.n_ctx

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    def render_chat(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        size = sum(self.count_tokens(m["content"]) + _PER_MESSAGE_TOKENS for m in messages)
        return RenderedPrompt(size=size, payload=[dict(m) for m in messages])

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str]:
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
        try:
            # Leaving this block closes the connection, which is how a server learns to stop.
            with self._http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteModelError(
                        f"model server answered {response.status_code}: {response.text[:300]}"
                    )
                for line in response.iter_lines():
                    piece = _content(line)
                    if piece is None:
                        continue
                    if should_stop():
                        return
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise RemoteModelError(
                f"model server at {self.settings.openai_base_url} failed: {exc!r}"
            ) from exc

    def close(self) -> None:
        self._http.close()


def _content(line: str) -> str | None:
    """The text of one streamed chunk; None for lines that carry none (comments, [DONE], role)."""
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
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else None
