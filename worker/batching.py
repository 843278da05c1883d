"""Continuous batching: one llama.cpp context writing several answers at once, a token each per step.

One thread owns the context. Each step it puts into one batch the last sampled token of every
answer being written and, with the room left, the next chunk of any prompt still being read; one
`llama_decode` computes them all, and each answer samples its next token with its own llama.cpp
sampler chain straight from the context's logits (nothing is copied into Python). A request that
arrives joins at the next step; one that ends or is abandoned leaves without disturbing the rest.
Callers consume `generate()` from their own threads. Text reaches them in handfuls, not token by
token: on two cores, a thread woken for every token takes a core from llama.cpp's threads in the
middle of a step, and all of them wait for it (measured: four answers together were no faster
than one). The first words are handed over at once, then at most every `_HAND_OVER_SECONDS`.

The shape follows llama.cpp's own server (tools/server): slots bound to conversations, decode
tokens and prompt chunks mixed in one batch, prompt reuse by longest common prefix.
"""

from __future__ import annotations

import codecs
import ctypes
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp as C
import numpy as np

from worker.grammar import Constrained, GrammarRefused, Opening
from worker.kv_slots import Slot, SlotTable
from worker.llama_native import ContextShape, NativeModel, new_context
from worker.sampling import Sampling

log = logging.getLogger(__name__)

# While other answers are being written, a newly arrived prompt is read this many tokens per step,
# so that their words keep coming while it is read.
_PREFILL_CHUNK_BESIDE_OTHERS = 128
_PENALTY_LAST_N = 64
_WAIT_SLICE_SECONDS = 0.5
_HAND_OVER_SECONDS = 0.1


class GenerationError(Exception):
    """The model could not go on with an answer (llama.cpp refused a batch, or the engine stopped)."""


@dataclass
class EngineStats:
    steps: int = 0
    decoded_tokens: int = 0
    prompt_tokens_computed: int = 0
    widest_step: int = 0  # the most answers that got a token in one step
    decode_seconds: float = 0.0  # inside llama_decode
    busy_seconds: float = 0.0  # with at least one answer in progress
    constrained_tokens: int = 0  # tokens of answers held to a grammar
    grammar_seconds: float = 0.0  # spent picking them (the rest of the batch waits meanwhile)


class Phase(enum.Enum):
    """Where an answer stands in the engine's loop (which alone moves it on)."""

    WAITING = "in the inbox, no sequence yet"
    READING = "its prompt is being computed, a chunk per step"
    WRITING = "a token per step: `next_token` is computed at the next one"
    ENDED = "finished, failed or let go; its sequence is released"


@dataclass(eq=False)
class _Request:
    key: str | None
    prompt: list[int]
    max_tokens: int
    should_stop: Callable[[], bool]
    sampling: Sampling
    shared: int = 0  # the prompt's first tokens that other conversations begin with too
    pieces: deque[str] = field(default_factory=deque)
    ready: threading.Event = field(default_factory=threading.Event)
    handed_at: float = float("-inf")
    phase: Phase = Phase.WAITING
    error: BaseException | None = None
    slot: Slot | None = None
    fed: int = 0  # prompt tokens in the sequence
    chunk: int = 0  # prompt tokens in the current step's batch
    next_token: int = 0  # while WRITING: the sampled token that the next step computes
    produced: int = 0
    sampler: Any = None  # llama.cpp's chain; None for greedy answers, chosen in `_greedy`
    constrained: Constrained | None = None  # the answer's grammar (structured output)
    # The token that puts the answer under its grammar (a tool call's opening); until the model
    # writes it, the answer is free. -1: held from the first token.
    trigger: int = -1
    # A form the answer may begin in that another grammar then holds (a call written as bare JSON):
    # until `begun` tells, the answer's tokens and text are kept to be re-read.
    opening: Opening | None = None
    opening_grammar: Constrained | None = None
    opening_tokens: list[int] = field(default_factory=list)
    opening_text: str = ""
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=_PENALTY_LAST_N))
    # Set by the caller's thread when it stops reading (a flag, not a Phase: only the loop moves
    # the phase on, and it ends an abandoned answer at its next pass).
    abandoned: bool = False
    text: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


class BatchEngine:
    def __init__(
        self,
        model: NativeModel,
        shape: ContextShape,
        cache_budget_bytes: int,
        repeat_penalty: float = 1.0,
    ) -> None:
        self.model = model
        self.shape = shape
        self.repeat_penalty = repeat_penalty
        self.ctx = new_context(model, shape)
        self.memory = C.llama_get_memory(self.ctx)
        self.batch = C.llama_batch_init(shape.n_batch, 0, 1)
        self.slots = SlotTable(shape.n_seq, self, cache_budget_bytes)
        self.stats = EngineStats()
        # Greedy answers skip llama.cpp's sampler chain, which copies all logits into a candidate list
        # for every token (a quarter of a millisecond here, 3-4 % of a token's time); see `_greedy`.
        self.fast_greedy = True
        # Idle conversations leave the shared buffer while others are answered (see kv_slots); a
        # switch for the benchmark that measures what that gives.
        self.park_idle = True
        self._inbox: deque[_Request] = deque()
        self._active: list[_Request] = []
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="batch-engine", daemon=True)
        self._thread.start()

    # --- what callers use ------------------------------------------------------------------

    def generate(
        self,
        prompt: Sequence[int],
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        key: str | None = None,
        grammar: str | None = None,
        trigger: int | None = None,
        opening: Opening | None = None,
        shared: int = 0,
    ) -> Iterator[str]:
        """Yield the answer's text as it is written; `should_stop` is asked once per new token.
        With a `grammar` (GBNF), the answer is held to it: from its first token, or with a
        `trigger`, from the token after the model writes that one. With an `opening`, an answer
        that begins in its form is held to its grammar instead. The prompt's first `shared` tokens
        begin other conversations too (the system prompt): they are computed once and restored."""
        if not prompt:
            raise GenerationError("empty prompt")
        request = _Request(key, list(prompt), max_tokens, should_stop, sampling, shared)
        if trigger is not None:
            request.trigger = trigger
        # Parsed here, in the caller's thread, not in the loop that every answer waits on.
        try:
            if grammar is not None:
                request.constrained = Constrained(self.model.vocab, self.model.n_vocab, grammar)
            if opening is not None:
                request.opening = opening
                request.opening_grammar = Constrained(self.model.vocab, self.model.n_vocab, opening.grammar)
        except GrammarRefused as exc:
            self._free_grammars(request)
            raise GenerationError(str(exc)) from None
        with self._wake:
            if self._closing:
                self._free_grammars(request)
                raise GenerationError("the model is shutting down")
            self._inbox.append(request)
            self._wake.notify()
        try:
            while True:
                # In slices, so that an exception raised into this thread (RQ's job timeout) lands.
                if not request.ready.wait(_WAIT_SLICE_SECONDS):
                    continue
                request.ready.clear()
                ended = request.phase is Phase.ENDED  # read before draining: nothing comes after
                text = "".join(request.pieces.popleft() for _ in range(len(request.pieces)))
                if text:
                    yield text
                if ended:
                    if request.error is not None:
                        raise request.error
                    return
        finally:
            request.abandoned = True

    def clear_cache(self) -> None:
        """Forget every computed context (benchmarks measure reading from scratch). Only while idle."""
        with self._wake:
            if self._inbox or self._active:
                raise RuntimeError("the engine is busy")
            self.slots.clear()

    def close(self) -> None:
        stats = self.stats
        log.info(
            "engine: %d steps, %d tokens decoded, %d prompt tokens computed, %d reused; %d contexts "
            "moved to RAM while idle, %d restored, %d dropped for room (read again); busy %.1f s, of "
            "which %.1f s in llama_decode",
            stats.steps,
            stats.decoded_tokens,
            stats.prompt_tokens_computed,
            self.slots.stats.reused_tokens,
            self.slots.stats.parked,
            self.slots.stats.restored,
            self.slots.stats.dropped,
            stats.busy_seconds,
            stats.decode_seconds,
        )
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=30)
        C.llama_batch_free(self.batch)
        C.llama_free(self.ctx)

    # --- the sequences' states (the SlotTable's backend) ------------------------------------

    def save(self, seq: int) -> tuple[Any, int]:
        size = C.llama_state_seq_get_size(self.ctx, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = C.llama_state_seq_get_data(self.ctx, buffer, size, seq)
        return buffer, written

    def state_size(self, seq: int) -> int:
        return int(C.llama_state_seq_get_size(self.ctx, seq))

    def restore(self, seq: int, state: Any) -> bool:
        return bool(C.llama_state_seq_set_data(self.ctx, state, len(state), seq) > 0)

    def trim(self, seq: int, keep: int) -> None:
        C.llama_memory_seq_rm(self.memory, seq, keep, -1)

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not (self._closing or self._inbox or self._active):
                        self._wake.wait()
                    if self._closing:
                        break
                    arrivals: list[_Request] = []
                    while self._inbox and len(self._active) + len(arrivals) < self.shape.n_seq:
                        arrivals.append(self._inbox.popleft())
                for request in arrivals:
                    self._admit(request)
                for request in [r for r in self._active if r.abandoned]:
                    self._end(request, None)
                if self._active and self.shape.unified and self.park_idle:
                    # After admitting: whoever writes again first takes back their own sequence.
                    self.slots.park_idle()
                if self._active:
                    started = time.perf_counter()
                    self._step()
                    self.stats.busy_seconds += time.perf_counter() - started
        except BaseException as exc:
            log.exception("the batch engine stopped")
            error = GenerationError(f"the model stopped: {exc}")
            for request in [*self._active]:
                self._end(request, error)
        finally:
            with self._wake:
                self._closing = True
                left = list(self._inbox)
                self._inbox.clear()
            for request in left:
                self._end(request, GenerationError("the model is shutting down"))
            for request in [*self._active]:
                self._end(request, GenerationError("the model is shutting down"))

    def _admit(self, request: _Request) -> None:
        if request.abandoned:
            self._end(request, None)  # lets go of its grammar
            return
        slot, keep = self.slots.acquire(request.key, request.prompt, request.shared)
        request.slot, request.fed = slot, keep
        sampling = request.sampling
        plain = not (sampling.penalised or request.constrained or request.opening)
        if self.fast_greedy and sampling.temperature <= 0 and plain:
            request.recent.extend(request.prompt[-_PENALTY_LAST_N:])
        else:
            request.sampler = self._sampler(request.sampling, request.prompt)
        request.phase = Phase.READING
        self._active.append(request)
        log.debug("seq=%d admitted: %d prompt tokens, %d reused", slot.index, len(request.prompt), keep)

    def _step(self) -> None:
        batch, n = self.batch, 0
        sample_at: list[tuple[_Request, int]] = []
        decoding = [r for r in self._active if r.phase is Phase.WRITING]
        for request in decoding:
            assert request.slot is not None
            self._put(n, request.next_token, len(request.slot.tokens), request.slot.index, True)
            sample_at.append((request, n))
            n += 1
        room = self.shape.n_batch - n
        if decoding:
            room = min(room, _PREFILL_CHUNK_BESIDE_OTHERS)
        reading = [r for r in self._active if r.phase is Phase.READING]
        for request in reading:
            assert request.slot is not None
            left = len(request.prompt) - request.fed
            request.chunk = min(left, room)
            if request.fed < request.shared < request.fed + request.chunk and self.slots.wants_prefix(
                request.prompt[: request.shared]
            ):
                # This chunk ends where the shared beginning does, to be saved as it is (see below).
                request.chunk = request.shared - request.fed
            for offset in range(request.chunk):
                position = request.fed + offset
                last = offset == left - 1
                self._put(n, request.prompt[position], position, request.slot.index, last)
                if last:
                    sample_at.append((request, n))
                n += 1
            room -= request.chunk
        batch.n_tokens = n
        if not self._decode():
            return
        self.stats.steps += 1
        self.stats.decoded_tokens += len(decoding)
        self.stats.widest_step = max(self.stats.widest_step, len(decoding))
        for request in decoding:
            assert request.slot is not None
            request.slot.tokens.append(request.next_token)
        for request in reading:
            assert request.slot is not None
            request.slot.tokens.extend(request.prompt[request.fed : request.fed + request.chunk])
            request.fed += request.chunk
            self.stats.prompt_tokens_computed += request.chunk
            request.chunk = 0
            if request.fed == request.shared and self.slots.wants_prefix(request.slot.tokens):
                self.slots.remember_prefix(request.slot)
        for request, index in sample_at:
            if request.constrained is not None and request.trigger < 0:
                token = self._constrained(request, index)
                if token < 0:
                    continue
            elif request.sampler is not None:
                token = C.llama_sampler_sample(request.sampler, self.ctx, index)
                if token == request.trigger:
                    request.trigger = -1  # the grammar holds the answer from the next token on
                    self._drop_opening(request)
                elif request.opening is not None:
                    self._watch_opening(request, token)
            else:
                token = self._greedy(request, index)
            self._next_token(request, token)

    def _constrained(self, request: _Request, index: int) -> int:
        """The next token of an answer held to a grammar; -1 when the grammar allows none (ended)."""
        constrained = request.constrained
        assert constrained is not None
        started = time.perf_counter()
        try:
            token = constrained.sample(self.ctx, index, request.sampler)
            if not self.model.is_eog(token):
                constrained.accept(token)
        except GrammarRefused as exc:
            self._end(request, GenerationError(str(exc)))
            return -1
        finally:
            self.stats.grammar_seconds += time.perf_counter() - started
        self.stats.constrained_tokens += 1
        return token

    def _watch_opening(self, request: _Request, token: int) -> None:
        """Keep the answer's first tokens until its opening tells whether it has begun in that
        form; if it has, and its grammar accepts them all, the grammar holds the answer from here."""
        opening, grammar = request.opening, request.opening_grammar
        assert opening is not None and grammar is not None
        if self.model.is_eog(token):
            return
        request.opening_tokens.append(token)
        request.opening_text += self.model.piece(token).decode("utf-8", "replace")
        begun = opening.begun(request.opening_text)
        if begun is None:
            return
        if begun:
            for kept in request.opening_tokens:
                if not grammar.allows(kept):
                    break
                grammar.accept(kept)
            else:
                # The opening's grammar takes the place of the one that waited for a trigger.
                if request.constrained is not None:
                    request.constrained.free()
                request.constrained, request.opening_grammar = grammar, None
                request.trigger = -1
        self._drop_opening(request)

    def _drop_opening(self, request: _Request) -> None:
        if request.opening_grammar is not None:
            request.opening_grammar.free()
        request.opening, request.opening_grammar = None, None
        request.opening_tokens, request.opening_text = [], ""

    def _free_grammars(self, request: _Request) -> None:
        if request.constrained is not None:
            request.constrained.free()
            request.constrained = None
        self._drop_opening(request)

    def _put(self, i: int, token: int, position: int, seq: int, logits: bool) -> None:
        batch = self.batch
        batch.token[i] = token
        batch.pos[i] = position
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _decode(self) -> bool:
        """One `llama_decode`; if the cache has no room, idle sequences are moved to RAM and it is tried
        once more. Answers in a batch that still fails end with an error."""
        started = time.perf_counter()
        result = C.llama_decode(self.ctx, self.batch)
        self.stats.decode_seconds += time.perf_counter() - started
        if result == 1:
            for slot in self.slots.slots:
                if not slot.busy and slot.tokens:
                    self.slots.forget(slot, save=True)
            result = C.llama_decode(self.ctx, self.batch)
        if result == 0:
            return True
        log.error("llama_decode failed (%d) for a batch of %d tokens", result, self.batch.n_tokens)
        for request in [*self._active]:
            if request.phase is Phase.WRITING or request.chunk:
                assert request.slot is not None
                self.slots.forget(request.slot)
                self._end(request, GenerationError(f"the model could not compute the answer ({result})"))
        return False

    def _next_token(self, request: _Request, token: int) -> None:
        if self.model.is_eog(token):
            self._end(request, None)
            return
        text = request.text.decode(self.model.piece(token))
        if text:
            request.pieces.append(text)
            now = time.monotonic()
            if now - request.handed_at >= _HAND_OVER_SECONDS:
                request.handed_at = now
                request.ready.set()
        request.produced += 1
        # Asked once per token: this is where a cancel or a time limit stops the answer.
        if request.should_stop() or request.produced >= request.max_tokens:
            self._end(request, None)
            return
        request.phase, request.next_token = Phase.WRITING, token

    def _greedy(self, request: _Request, index: int) -> int:
        """The most likely token after llama.cpp's repeat penalty, read in place from the context's
        logits: what the chain penalties -> greedy picks (tested), without copying the vocabulary."""
        pointer = C.llama_get_logits_ith(self.ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,))
        penalty = self.repeat_penalty
        if penalty != 1.0:
            for token in set(request.recent):
                value = logits[token]
                logits[token] = value * penalty if value <= 0 else value / penalty
        chosen = int(logits.argmax())
        request.recent.append(chosen)
        return chosen

    def _end(self, request: _Request, error: BaseException | None) -> None:
        if error is None:
            tail = request.text.decode(b"", final=True)
            if tail:
                request.pieces.append(tail)
        request.error = error
        request.phase = Phase.ENDED
        request.ready.set()
        if request.sampler is not None:
            C.llama_sampler_free(request.sampler)
            request.sampler = None
        self._free_grammars(request)
        if request.slot is not None:
            self.slots.release(request.slot)
        if request in self._active:
            self._active.remove(request)

    def _sampler(self, sampling: Sampling, prompt: list[int]) -> Any:
        """llama.cpp's own sampler chain for one answer (the same order as llama-cpp-python's)."""
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        add = C.llama_sampler_chain_add
        if self.repeat_penalty != 1.0 or sampling.penalised:
            add(
                chain,
                C.llama_sampler_init_penalties(
                    self.model.n_vocab,
                    _PENALTY_LAST_N,
                    self.repeat_penalty,
                    sampling.frequency_penalty,
                    sampling.presence_penalty,
                ),
            )
        if sampling.temperature <= 0:
            add(chain, C.llama_sampler_init_greedy())
        else:
            add(chain, C.llama_sampler_init_top_k(40))
            add(chain, C.llama_sampler_init_top_p(sampling.top_p, 1))
            add(chain, C.llama_sampler_init_min_p(0.05, 1))
            add(chain, C.llama_sampler_init_temp(sampling.temperature))
            seed = sampling.seed if sampling.seed is not None else C.LLAMA_DEFAULT_SEED
            add(chain, C.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        # The repeat penalty looks at the recent prompt too, as it did in a single-sequence run.
        for token in prompt[-_PENALTY_LAST_N:]:
            C.llama_sampler_accept(chain, token)
        return chain
