"""Checking a grammar the way the worker's sampler applies it."""

from __future__ import annotations

import ctypes

import llama_cpp as C

from worker.llama_native import NativeModel


def grammar_accepts(model: NativeModel, grammar: str, text: str) -> bool:
    """Whether the grammar lets `text` be written and then the answer end."""
    sampler = C.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    assert sampler, grammar
    try:
        for token in [*model.tokenize(text, add_bos=False, special=False), model.eos]:
            one = (C.llama_token_data * 1)(C.llama_token_data(token, 0.0, 0.0))
            C.llama_sampler_apply(sampler, ctypes.byref(C.llama_token_data_array(one, 1, -1, False)))
            if one[0].logit == float("-inf"):
                return False
            if token != model.eos:
                C.llama_sampler_accept(sampler, token)
        return True
    finally:
        C.llama_sampler_free(sampler)
