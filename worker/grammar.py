"""One answer held to a grammar (structured output), beside the other answers of a batch.

llama.cpp's grammar sampler checks a candidate token against the grammar's stacks; over a whole
vocabulary (151,936 tokens for Qwen2.5) that is milliseconds per token, and the batch's one thread
would make every answer wait for it. So the answer's ordinary chain picks first, and only that one
token is checked; the whole vocabulary is filtered only when the pick breaks the grammar (llama.cpp's
own server does the same), and a broken pick is replaced from a shortlist of the likeliest tokens
before the whole vocabulary is ever filtered. An answer without a grammar never comes here.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import llama_cpp as C
import numpy as np

# The layout of llama.cpp's llama_token_data: id, logit, p.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
# How many of the likeliest tokens are checked one by one when the first pick breaks the grammar.
_SHORTLIST = 512
assert _TOKEN_DATA.itemsize == ctypes.sizeof(C.llama_token_data)


class GrammarRefused(ValueError):
    """llama.cpp could not parse the grammar."""


@dataclass(frozen=True)
class Opening:
    """A form an answer may begin in, held to `grammar` once it has: `begun` says of the answer's
    text so far True (it has: the grammar re-reads the answer from its first token and holds the
    rest), False (it has not: the answer stays free) or None (not known yet)."""

    begun: Callable[[str], bool | None]
    grammar: str


class Constrained:
    def __init__(self, vocab: Any, n_vocab: int, grammar: str) -> None:
        self.grammar = C.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not self.grammar:
            raise GrammarRefused("llama.cpp refused the grammar")
        self.n_vocab = n_vocab
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._all = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._all_array = C.llama_token_data_array(
            self._all.ctypes.data_as(ctypes.POINTER(C.llama_token_data)), n_vocab, -1, False
        )
        self._one = (C.llama_token_data * 1)()
        self._one_array = C.llama_token_data_array(self._one, 1, -1, False)

    def sample(self, ctx: Any, index: int, chain: Any) -> int:
        """The chain's pick from the logits at `index`, within the grammar; accepted by both."""
        logits = np.ctypeslib.as_array(C.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
        token = self._pick(logits, chain)
        if not self.allows(token):
            # The likeliest tokens, checked one by one (microseconds each), nearly always hold the
            # allowed ones worth sampling; the chain's min-p would drop any beyond them. The whole
            # vocabulary is filtered (16 ms here) only when none of them fits.
            best = np.argpartition(logits, -_SHORTLIST)[-_SHORTLIST:]
            allowed = np.fromiter((t for t in best.tolist() if self.allows(t)), dtype=np.int32)
            token = (
                self._pick(logits, chain, allowed)
                if allowed.size
                else self._pick(logits, chain, everything=True)
            )
        C.llama_sampler_accept(chain, token)
        return token

    def accept(self, token: int) -> None:
        """Move the grammar past `token` (never an end-of-generation token: llama.cpp aborts on
        one the grammar is not complete for, and the answer ends there anyway)."""
        C.llama_sampler_accept(self.grammar, token)

    def allows(self, token: int) -> bool:
        self._one[0] = C.llama_token_data(token, 0.0, 0.0)
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        C.llama_sampler_apply(self.grammar, ctypes.byref(self._one_array))
        return bool(np.isfinite(self._one[0].logit))

    def _pick(
        self,
        logits: np.ndarray[Any, Any],
        chain: Any,
        among: np.ndarray[Any, Any] | None = None,
        everything: bool = False,
    ) -> int:
        """The chain's pick among the tokens `among` (all of them when None); with `everything`,
        among all the tokens the grammar allows."""
        # The chain sorts and shrinks the array in place: it is refilled for every pick.
        count = self.n_vocab if among is None else len(among)
        view = self._all[:count]
        view["id"] = self._ids if among is None else among
        view["logit"] = logits if among is None else logits[among]
        view["p"] = 0.0
        array = self._all_array
        array.size, array.selected, array.sorted = count, -1, False
        if everything:
            C.llama_sampler_apply(self.grammar, ctypes.byref(array))
        C.llama_sampler_apply(chain, ctypes.byref(array))
        # Read through the array's own pointer: a sampler may point it elsewhere.
        chosen = array.data[array.selected] if array.selected >= 0 else None
        if chosen is None or not np.isfinite(chosen.logit):
            raise GrammarRefused("no token can continue the answer within its grammar")
        return int(chosen.id)

    def free(self) -> None:
        if self.grammar is not None:
            C.llama_sampler_free(self.grammar)
            self.grammar = None
