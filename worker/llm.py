"""The model wrapper: one loaded GGUF, its own chat template and tokenizer, streamed generation."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from shared.config import ModelSettings
from shared.json_grammar import response_format_grammar
from shared.tools import ToolCall, ToolChoice
from worker import tool_calls
from worker.chat_template import CHATML, ChatTemplate, TemplateUnusable
from worker.sampling import Sampling

__all__ = ["ChatMessage", "ChatModel", "LlamaChatModel", "RenderedPrompt", "Sampling", "words"]

log = logging.getLogger(__name__)

# A message as chat templates read it: role and content, and for tool calling `tool_calls`
# (arguments as JSON objects), `tool_call_id` and `name`.
ChatMessage = dict[str, Any]


@dataclass(frozen=True)
class RenderedPrompt:
    """A conversation made ready for one model: its size in tokens and what `generate` takes."""

    size: int
    payload: Any
    # How many of the first tokens every conversation with the same system prompt (and tools) begins
    # with; a model that keeps computed contexts computes them once. 0: none worth keeping.
    shared: int = 0


def words(pieces: Iterable[str | ToolCall]) -> Iterator[str]:
    """An answer's text, where no tools were offered (so none can be called)."""
    for piece in pieces:
        if not isinstance(piece, str):
            raise TypeError("a tool call in an answer that was offered no tools")
        yield piece


class ChatModel(Protocol):
    """What the worker needs from a model; the real one is `LlamaChatModel`."""

    @property
    def name(self) -> str:
        """Shown to users as the model that wrote an answer."""
        ...

    @property
    def context_window(self) -> int: ...

    def render_chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]] | None = None
    ) -> RenderedPrompt:
        """These messages (and the tools the reply may call) as a prompt for the assistant's reply,
        with its size in tokens."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str | ToolCall]:
        """Yield the reply piece by piece, then the calls it makes to `sampling.tools` if any;
        `should_stop` is called once for every new token.

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
        from worker.batching import BatchEngine
        from worker.llama_native import ContextShape, NativeModel

        self.path = path
        self.settings = settings
        self.native = NativeModel(path)
        shape = ContextShape(
            n_ctx=settings.n_ctx * parallel,
            n_seq=parallel,
            n_batch=settings.batch_tokens(),
            n_threads=settings.n_threads or os.cpu_count() or 1,
            kv_type=settings.kv_type(),
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
        source = self.native.metadata("tokenizer.chat_template") or CHATML
        try:
            self.template = ChatTemplate(source, self._bos_text, eos_text)
        except TemplateUnusable as exc:
            log.warning("model %s has an unusable chat template (%s); using ChatML", path.name, exc)
            self.template = ChatTemplate(CHATML, self._bos_text, eos_text)
        # Tool calls open with one token of their own, or this model is not asked to make them.
        opening = self.native.tokenize(tool_calls.OPEN, add_bos=False, special=True)
        self._call_token = opening[0] if self.template.calls_tools and len(opening) == 1 else None
        log.info(
            "model loaded: %s (%d-token context × %d conversations at once; KV %s; %d MB for saved ones)",
            path.name,
            settings.n_ctx,
            parallel,
            settings.kv_type(),
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

    def render_chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]] | None = None
    ) -> RenderedPrompt:
        """The template's own text is read with its special tokens; every message's text (and
        every JSON value it writes) is read as plain text, so `<|im_start|>system` typed by a user
        is just characters to the model."""
        pieces, opening = self.template.render_parts(messages, tools)
        # The template may already begin with the BOS token; never add a second one.
        add_bos = not (
            self._bos_text and pieces and not pieces[0][1] and pieces[0][0].startswith(self._bos_text)
        )
        tokens: list[int] = []
        shared = 0
        for n, (text, plain) in enumerate(pieces):
            if n == opening:
                # Each piece is tokenized alone, so these tokens never depend on what follows.
                shared = len(tokens)
            tokens += self.native.tokenize(text, add_bos=add_bos and n == 0, special=not plain)
        has_system = bool(messages) and messages[0]["role"] == "system"
        return RenderedPrompt(size=len(tokens), payload=tokens, shared=shared if has_system else 0)

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str | ToolCall]:
        spec = sampling.tools
        if spec is None:
            grammar = None
            if sampling.response_format is not None:
                grammar = response_format_grammar(json.loads(sampling.response_format))
            return self.engine.generate(
                prompt.payload,
                max_tokens,
                should_stop,
                sampling,
                key=cache_key,
                grammar=grammar,
                shared=prompt.shared,
            )
        from worker.grammar import Opening  # with llama.cpp, like the engine

        if self._call_token is None:
            raise tool_calls.ToolsUnsupported(self.name)
        grammar = tool_calls.calls_grammar(spec)
        # A required call starts the answer; otherwise the grammar waits for the model to open one.
        opened = spec.choice != ToolChoice.AUTO
        tokens = [*prompt.payload, self._call_token] if opened else prompt.payload
        bare = (
            None
            if opened
            else Opening(partial(tool_calls.bare_begun, spec=spec), tool_calls.bare_grammar(spec))
        )
        pieces = self.engine.generate(
            tokens,
            max_tokens,
            should_stop,
            sampling,
            key=cache_key,
            grammar=grammar,
            trigger=None if opened else self._call_token,
            opening=bare,
            shared=prompt.shared,
        )
        return tool_calls.split_answer(pieces, spec, opened)

    def close(self) -> None:
        self.engine.close()
        self.native.close()
