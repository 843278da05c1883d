"""The model wrapper: one loaded GGUF, its own chat template and tokenizer, streamed generation."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared.config import ModelSettings

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

ChatMessage = dict[str, str]


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float


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
        self, prompt: RenderedPrompt, max_tokens: int, should_stop: Callable[[], bool], sampling: Sampling
    ) -> Iterator[str]:
        """Yield the reply piece by piece; `should_stop` is called once for every new token."""
        ...


class LlamaChatModel:
    """A GGUF model loaded once with llama-cpp-python and reused for every reply."""

    def __init__(self, path: Path, settings: ModelSettings) -> None:
        from jinja2.exceptions import TemplateError
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        self.settings = settings
        self._llama: Llama = Llama(
            model_path=str(path),
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads or os.cpu_count() or 1,
            seed=settings.seed if settings.seed is not None else -1,
            verbose=False,
        )
        self._eos_text = self._token_text(self._llama.token_eos())
        self._bos_text = self._token_text(self._llama.token_bos())
        template = self._llama.metadata.get("tokenizer.chat_template") or _CHATML
        try:
            self._formatter = Jinja2ChatFormatter(
                template, eos_token=self._eos_text, bos_token=self._bos_text
            )
        except TemplateError:
            log.warning("model %s has an unusable chat template; using ChatML", path.name)
            self._formatter = Jinja2ChatFormatter(_CHATML, eos_token=self._eos_text, bos_token=self._bos_text)
        log.info("model loaded: %s (context %d tokens)", path.name, self.context_window)

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llama.detokenize([token], special=True).decode("utf-8", errors="ignore")

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".gguf")

    @property
    def context_window(self) -> int:
        return self._llama.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render_chat(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        prompt = self._formatter(messages=list(messages)).prompt  # type: ignore[arg-type]
        # The template may already begin with the BOS token; never add a second one.
        add_bos = not (self._bos_text and prompt.startswith(self._bos_text))
        tokens = self._llama.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        return RenderedPrompt(size=len(tokens), payload=tokens)

    def generate(
        self, prompt: RenderedPrompt, max_tokens: int, should_stop: Callable[[], bool], sampling: Sampling
    ) -> Iterator[str]:
        from llama_cpp import StoppingCriteriaList

        stream = self._llama.create_completion(
            prompt.payload,
            max_tokens=max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            repeat_penalty=self.settings.repeat_penalty,
            stop=[self._eos_text] if self._eos_text else [],
            stream=True,
            stopping_criteria=StoppingCriteriaList([lambda _ids, _logits: should_stop()]),
        )
        for chunk in stream:
            text = chunk["choices"][0]["text"]  # type: ignore[index]
            if text:
                yield text
