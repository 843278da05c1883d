"""llama.cpp through llama-cpp-python's low-level bindings: the model, its vocabulary, one context.

The high-level `Llama` class decodes one sequence and keeps a Python copy of every logit; serving
several conversations at once needs the C API itself: one context holding a KV sequence per
conversation, batches that mix them, and llama.cpp's own sampler chains.
"""

from __future__ import annotations

import ctypes
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp as C

log = logging.getLogger(__name__)

# llama.cpp logs every tensor it loads to stderr; keep its warnings and errors only.
_GGML_LOG_LEVEL_WARN = 3
_GGML_LOG_LEVEL_CONT = 5  # the rest of the previous line, at its level
_last_level = [0]


@C.llama_log_callback
def _log_callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    if level == _GGML_LOG_LEVEL_CONT:
        level = _last_level[0]
    _last_level[0] = level
    if level >= _GGML_LOG_LEVEL_WARN and text.strip():
        log.warning("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())


_initialised = False


def _init_backend() -> None:
    global _initialised
    if not _initialised:
        C.llama_log_set(_log_callback, ctypes.c_void_p(0))
        C.llama_backend_init()
        _initialised = True


class NativeModel:
    """The weights and vocabulary of one GGUF file: tokenizing, pieces of text, metadata."""

    def __init__(self, path: Path) -> None:
        _init_backend()
        params = C.llama_model_default_params()
        # Read, not memory-mapped. On this kind of CPU llama.cpp repacks most weights into a layout
        # of its own in anonymous memory; with the file also mapped, its pages stayed resident beside
        # the copy: 1.5B's worker held 2,030 MB instead of 1,440, at the same speed (measured).
        params.load_mode = C.LLAMA_LOAD_MODE_NONE
        model = C.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ValueError(f"llama.cpp could not load {path}")
        self.ptr = model
        self.vocab = C.llama_model_get_vocab(model)
        self.n_vocab: int = C.llama_vocab_n_tokens(self.vocab)
        self.bos: int = C.llama_vocab_bos(self.vocab)
        self.eos: int = C.llama_vocab_eos(self.vocab)
        self._pieces: dict[int, bytes] = {}
        # Tokens the vocabulary adds as whole words (Qwen2.5's <tool_call> and </tool_call>): llama.cpp
        # reads them out of plain text too, so a message or a tool's result could write one.
        added = [
            t
            for t in range(self.n_vocab)
            if C.llama_vocab_get_attr(self.vocab, t) & C.LLAMA_TOKEN_ATTR_USER_DEFINED
        ]
        words = sorted(
            {self.piece(t, special=True).decode("utf-8", "replace") for t in added}, key=len, reverse=True
        )
        self._added = re.compile("|".join(map(re.escape, words))) if words else None

    def close(self) -> None:
        if self.ptr:
            C.llama_model_free(self.ptr)
            self.ptr = None

    def metadata(self, key: str) -> str | None:
        size = 1 << 16  # chat templates run to a few KB
        buffer = ctypes.create_string_buffer(size)
        length = C.llama_model_meta_val_str(self.ptr, key.encode(), buffer, size)
        if length < 0:
            return None
        if length >= size:
            buffer = ctypes.create_string_buffer(length + 1)
            C.llama_model_meta_val_str(self.ptr, key.encode(), buffer, length + 1)
        return buffer.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, add_bos: bool, special: bool) -> list[int]:
        """`text` as tokens; with `special` False, nothing in it becomes a token of the markup (an
        added word is read as the characters it is made of)."""
        if special or self._added is None or not self._added.search(text):
            return self._tokenize(text, add_bos, special)
        tokens = self._tokenize("", True, False) if add_bos else []  # the BOS, if the model takes one
        at = 0
        for match in self._added.finditer(text):
            word = match.group()
            for part in (text[at : match.start()], word[:1], word[1:]):
                tokens += self._tokenize(part, False, False) if part else []
            at = match.end()
        return tokens + (self._tokenize(text[at:], False, False) if text[at:] else [])

    def _tokenize(self, text: str, add_bos: bool, special: bool) -> list[int]:
        data = text.encode("utf-8")
        room = len(data) + 2
        tokens = (C.llama_token * room)()
        count = C.llama_tokenize(self.vocab, data, len(data), tokens, room, add_bos, special)
        if count < 0:  # more tokens than bytes cannot happen, but the API says how many it needs
            room = -count
            tokens = (C.llama_token * room)()
            count = C.llama_tokenize(self.vocab, data, len(data), tokens, room, add_bos, special)
        return list(tokens[:count])

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (cached: the hot loop asks for the same few thousand again and again)."""
        key = token if not special else -token - 1
        cached = self._pieces.get(key)
        if cached is None:
            buffer = ctypes.create_string_buffer(64)
            length = C.llama_token_to_piece(self.vocab, token, buffer, 64, 0, special)
            if length < 0:
                buffer = ctypes.create_string_buffer(-length)
                length = C.llama_token_to_piece(self.vocab, token, buffer, -length, 0, special)
            cached = buffer.raw[:length]
            self._pieces[key] = cached
        return cached

    def is_eog(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self.vocab, token))


@dataclass(frozen=True)
class ContextShape:
    """How big the shared context is, and how it is computed."""

    n_ctx: int  # cells of KV cache for all sequences together (n_ctx / n_seq each)
    n_seq: int  # sequences (conversations) held at once
    n_batch: int
    n_threads: int
    kv_type: str = "f16"  # or q8_0 / q4_0: a smaller KV cache
    # One cache buffer shared by all sequences (faster batches), or a region per sequence (exact).
    unified: bool = True


_KV_TYPES = {"f16": C.GGML_TYPE_F16, "q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0}


def new_context(model: NativeModel, shape: ContextShape) -> Any:
    """A llama.cpp context whose KV cache holds `shape.n_seq` sequences side by side."""
    params = C.llama_context_default_params()
    params.n_ctx = shape.n_ctx
    params.n_batch = shape.n_batch
    params.n_ubatch = shape.n_batch
    params.n_seq_max = shape.n_seq
    params.n_threads = shape.n_threads
    params.n_threads_batch = shape.n_threads
    # Unified: one cache buffer that every sequence's cells share. Batches of several answers are
    # then about a quarter faster here (as in llama-batched-bench), but an answer's attention sums
    # run over cells laid out by whoever else is there, so greedy answers drift from what they are
    # alone after a few dozen tokens. A region per sequence (EXACT_BATCHING) keeps answers exactly
    # the same alone or beside others (tested). Flash attention either way: faster here, and needed
    # for a quantized V cache.
    params.kv_unified = shape.unified
    params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
    params.no_perf = True
    params.type_k = _KV_TYPES[shape.kv_type]
    params.type_v = _KV_TYPES[shape.kv_type]
    ctx = C.llama_init_from_model(model.ptr, params)
    if not ctx:
        raise ValueError(f"llama.cpp could not create a context of {shape.n_ctx} tokens")
    return ctx
