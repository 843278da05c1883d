"""The model wrapper: one loaded GGUF, its own chat template and tokenizer, streamed generation."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.config import ModelSettings
from shared.json_grammar import response_format_grammar
from worker.sampling import Sampling

__all__ = ["ChatMessage", "ChatModel", "LlamaChatModel", "RenderedPrompt", "Sampling"]

log = logging.getLogger(__name__)

ChatMessage = dict[str, str]


@dataclass(frozen=True)
class RenderedPrompt:
    """A conversation made ready for one model: its size in tokens and what `generate` takes."""

    size: int
    payload: Any


# Used when a GGUF carries no chat template of its own.
_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# Private-use characters around each message's index while the template is rendered, so that the
# messages' own text can be told from the template's (and tokenized without special tokens).
_MARKED = re.compile("\ue000(\\d+)\ue001")


def _render_marked(formatter: Any, messages: Sequence[ChatMessage]) -> str:
    marked = [{**m, "content": f"\ue000{n}\ue001"} for n, m in enumerate(messages)]
    return str(formatter(messages=marked).prompt)


def _keeps_contents_apart(formatter: Any) -> bool:
    """True when the template puts every message's text in the prompt once, untouched, in order."""
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    probe += [{"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}]
    found = [int(n) for n in _MARKED.findall(_render_marked(formatter, probe))]
    return found == list(range(len(probe)))


class ChatModel(Protocol):
    """What the worker needs from a model; the real one is `LlamaChatModel`."""

    @property
    def name(self) -> str:
        """Shown to users as the model that wrote an answer."""
        ...

    @property
    def context_window(self) -> int: ...

    def render_chat(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        """These messages as a prompt for the assistant's reply, with its size in tokens."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str]:
        """Yield the reply piece by piece; `should_stop` is called once for every new token.

        `cache_key` names the conversation, so a model that keeps computed contexts can find its own.
        May be called from several threads at once."""
        ...

    def close(self) -> None:
        """Let go of what the model holds (threads, memory, connections)."""
        ...


class LlamaChatModel:
    """A GGUF model loaded once, answering up to `parallel` conversations at once (continuous batching).

    Each conversation keeps its computed context between turns (see `worker.kv_slots`); every
    `generate` call may come from a thread of its own.
    """

    def __init__(self, path: Path, settings: ModelSettings, parallel: int = 1) -> None:
        from jinja2.exceptions import TemplateError
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from worker.batching import BatchEngine
        from worker.llama_native import ContextShape, NativeModel

        self.path = path
        self.settings = settings
        self.native = NativeModel(path)
        shape = ContextShape(
            n_ctx=settings.n_ctx * parallel,
            n_seq=parallel,
            n_batch=min(512, settings.n_ctx),
            n_threads=settings.n_threads or os.cpu_count() or 1,
            kv_type=settings.kv_cache_type,
            unified=not settings.exact_batching,
        )
        self.engine = BatchEngine(
            self.native,
            shape,
            settings.kv_cache_budget_mb() * 1024 * 1024,
            repeat_penalty=settings.repeat_penalty,
        )
        self._bos_text = self._token_text(self.native.bos)
        eos_text = self._token_text(self.native.eos)
        template = self.native.metadata("tokenizer.chat_template") or _CHATML
        try:
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos_text, bos_token=self._bos_text)
            usable = _keeps_contents_apart(self._formatter)
        except TemplateError:
            usable = False
        if not usable:
            log.warning("model %s has an unusable chat template; using ChatML", path.name)
            self._formatter = Jinja2ChatFormatter(_CHATML, eos_token=eos_text, bos_token=self._bos_text)
        log.info(
            "model loaded: %s (%d-token context × %d conversations at once; KV %s; %d MB for saved ones)",
            path.name,
            settings.n_ctx,
            parallel,
            settings.kv_cache_type,
            settings.kv_cache_budget_mb(),
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.native.piece(token, special=True).decode("utf-8", errors="ignore")

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".gguf")

    @property
    def context_window(self) -> int:
        return self.settings.n_ctx

    def count_tokens(self, text: str) -> int:
        return len(self.native.tokenize(text, add_bos=False, special=False))

    def render_chat(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        """The template's own text is read with its special tokens; every message's text is read
        as plain text, so `<|im_start|>system` typed by a user is just characters to the model."""
        pieces = _MARKED.split(_render_marked(self._formatter, messages))
        # The template may already begin with the BOS token; never add a second one.
        add_bos = not (self._bos_text and pieces[0].startswith(self._bos_text))
        tokens: list[int] = []
        for n, piece in enumerate(pieces):
            if n % 2:
                tokens += self.native.tokenize(messages[int(piece)]["content"], add_bos=False, special=False)
            elif piece:
                tokens += self.native.tokenize(piece, add_bos=add_bos and n == 0, special=True)
        return RenderedPrompt(size=len(tokens), payload=tokens)

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str]:
        grammar = None
        if sampling.response_format is not None:
            grammar = response_format_grammar(json.loads(sampling.response_format))
        return self.engine.generate(
            prompt.payload, max_tokens, should_stop, sampling, key=cache_key, grammar=grammar
        )

    def close(self) -> None:
        self.engine.close()
        self.native.close()
