"""Which conversation's computed context lives in which KV sequence, and which wait in RAM.

The context holds `n_seq` sequences. A conversation keeps its sequence between turns, so its next
turn computes only the new tokens, however many other people were answered in between. When a
conversation needs a sequence and none is free, the least recently used idle one is saved into
RAM (llama.cpp's per-sequence state: about a millisecond, against seconds to read the history
again) and restored when its person writes again. Saved states are kept within a byte budget;
past it the oldest are dropped, and only those conversations are read from scratch.

Idle conversations are also moved to RAM while other answers are written (`park_idle`), as long
as the budget has room for them without dropping anyone. In one shared cache buffer every answer's
attention runs over all the cells in use, masked, so idle neighbours slow each token (`make bench`
measures a lone answer beside three idle conversations both ways). Saving and restoring take about
a millisecond each.

A new conversation no longer finds the system prompt computed in an idle sequence, so the shared
beginning of prompts (the system prompt, and a /v1 request's tools) is kept apart: once a prompt's
reading reaches the end of that beginning, the sequence's state is saved as a prefix, and a new
conversation that begins the same way has it restored instead of reading it again (at 1.5B the
system prompt alone is ~0.7 s of reading, a request's tools several seconds). A restore writes the
cells afresh and compactly. Sharing another sequence's cells instead (llama.cpp lets cells belong to
several sequences) was tried and left out: shared cells stay where they were first computed and are
handed on from conversation to conversation, so after a busy moment they keep every later answer's
attention as wide as that moment left it (measured after a 4-person crowd: a lone answer's decode
fell from 0.94 to 0.88 of llama-bench).

Pure bookkeeping over a `SequenceBackend`, so that it is tested without a model.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence as Tokens
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Shared beginnings kept at once (a system prompt with and without tools, a persona or two); they
# take at most this share of the saved-state budget.
_PREFIXES = 4
_PREFIX_SHARE = 4


class SequenceBackend(Protocol):
    def save(self, seq: int) -> tuple[Any, int]:
        """The sequence's state and its size in bytes."""
        ...

    def state_size(self, seq: int) -> int:
        """The size in bytes `save` would give, without copying anything."""
        ...

    def restore(self, seq: int, state: Any) -> bool:
        """Put a saved state into (an emptied) `seq`; False if llama.cpp refused it."""
        ...

    def trim(self, seq: int, keep: int) -> None:
        """Forget everything of `seq` from position `keep` on (0: all of it)."""
        ...


@dataclass
class Slot:
    """One KV sequence: whose it is, the tokens it holds (in order), whether an answer uses it."""

    index: int
    key: str | None = None
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    used_at: int = 0
    # Left in the context by `park_idle` (no room in the budget) until it is used again.
    stays: bool = False


@dataclass
class _Saved:
    tokens: list[int]
    state: Any
    size: int


@dataclass
class CacheStats:
    reused_tokens: int = 0
    saved: int = 0
    restored: int = 0
    dropped: int = 0
    parked: int = 0
    prefixes_saved: int = 0
    prefixes_restored: int = 0


def common_prefix(a: Tokens[int], b: Tokens[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SlotTable:
    def __init__(self, n_seq: int, backend: SequenceBackend, budget_bytes: int) -> None:
        self.slots = [Slot(i) for i in range(n_seq)]
        self.backend = backend
        self.budget_bytes = budget_bytes
        self.saved: OrderedDict[str, _Saved] = OrderedDict()
        self.saved_bytes = 0
        # Shared beginnings of prompts, by their tokens (see the module's note).
        self.prefixes: OrderedDict[tuple[int, ...], _Saved] = OrderedDict()
        self.prefix_bytes = 0
        self.stats = CacheStats()
        self._tick = 0

    def has_free(self) -> bool:
        return any(not s.busy for s in self.slots)

    def acquire(self, key: str | None, prompt: Tokens[int], shared: int = 0) -> tuple[Slot, int]:
        """A sequence for `key`'s next prompt, and how many of its first tokens are already computed.

        The prompt's first `shared` tokens are a beginning other conversations share: when the
        sequence holds less of the prompt than that, a saved copy of it is restored."""
        slot = self._slot_for(key)
        if key is None or slot.key != key:
            self._evict(slot)
            slot.key = key
            restored = self.saved.pop(key, None) if key is not None else None
            if restored is not None:
                self.saved_bytes -= restored.size
                self.backend.trim(slot.index, 0)
                slot.tokens = []
                if self.backend.restore(slot.index, restored.state):
                    slot.tokens = restored.tokens
                    self.stats.restored += 1
                else:
                    log.warning("a saved context could not be restored; it is read again")
        # At least the last prompt token is computed again: its logits choose the first new token.
        keep = min(common_prefix(slot.tokens, prompt), len(prompt) - 1)
        if keep < shared < len(prompt) and (held := self._restore_prefix(slot, prompt[:shared])) is not None:
            keep = held
        if keep < len(slot.tokens):
            self.backend.trim(slot.index, keep)
            del slot.tokens[keep:]
        self.stats.reused_tokens += keep
        self._tick += 1
        slot.busy, slot.used_at, slot.stays = True, self._tick, False
        return slot, keep

    def wants_prefix(self, prefix: Tokens[int]) -> bool:
        """Whether a sequence that holds just `prefix` should be saved as a shared beginning."""
        return bool(prefix) and tuple(prefix) not in self.prefixes

    def remember_prefix(self, slot: Slot) -> None:
        """Save what `slot` holds (a shared beginning, nothing after it) for new conversations."""
        state, size = self.backend.save(slot.index)
        self.prefixes[tuple(slot.tokens)] = _Saved(list(slot.tokens), state, size)
        self.prefix_bytes += size
        self.stats.prefixes_saved += 1
        while self.prefixes and (
            len(self.prefixes) > _PREFIXES or self.prefix_bytes > self.budget_bytes // _PREFIX_SHARE
        ):
            _, dropped = self.prefixes.popitem(last=False)
            self.prefix_bytes -= dropped.size

    def _restore_prefix(self, slot: Slot, prefix: Tokens[int]) -> int | None:
        """How many tokens `slot` holds after the saved `prefix` is put in it (0 if llama.cpp refused
        it); None, with the slot untouched, when no such prefix is saved."""
        saved = self.prefixes.get(tuple(prefix))
        if saved is None:
            return None
        self.prefixes.move_to_end(tuple(prefix))
        self.backend.trim(slot.index, 0)
        slot.tokens = []
        if not self.backend.restore(slot.index, saved.state):
            log.warning("a saved beginning could not be restored; it is read again")
            return 0
        slot.tokens = list(saved.tokens)
        self.stats.prefixes_restored += 1
        return len(slot.tokens)

    def release(self, slot: Slot) -> None:
        slot.busy = False

    def forget(self, slot: Slot, save: bool = False) -> None:
        """Empty a sequence: moved into RAM first with `save` (to make room), else dropped (its
        contents are unknown after a failed decode)."""
        if save:
            self._evict(slot)
        self.backend.trim(slot.index, 0)
        slot.tokens, slot.key = [], None

    def park_idle(self) -> int:
        """Empty every idle sequence, moving its conversation's context into RAM if the budget has
        room for it without dropping a saved one (else it stays where it is); how many were emptied.

        Called before each step while answers are written; a sequence without a conversation only
        held a shared beginning, and is emptied too."""
        parked = 0
        for slot in self.slots:
            if slot.busy or slot.stays or not slot.tokens:
                continue
            if slot.key is not None:
                if self.saved_bytes + self.backend.state_size(slot.index) > self.budget_bytes:
                    slot.stays = True
                    continue
                self._evict(slot)
            self.backend.trim(slot.index, 0)
            slot.tokens = []
            parked += 1
        self.stats.parked += parked
        return parked

    def clear(self) -> None:
        """Forget every sequence's contents and every saved state (no slot may be busy)."""
        for slot in self.slots:
            self.forget(slot)
        self.saved.clear()
        self.saved_bytes = 0
        self.prefixes.clear()
        self.prefix_bytes = 0

    def _slot_for(self, key: str | None) -> Slot:
        idle = [s for s in self.slots if not s.busy]
        if not idle:
            raise RuntimeError("no free sequence")
        if key is not None:
            for slot in idle:
                if slot.key == key:
                    return slot
        empty = [s for s in idle if not s.tokens]
        return empty[0] if empty else min(idle, key=lambda s: s.used_at)

    def _evict(self, slot: Slot) -> None:
        """Move what `slot` holds into RAM (if it belongs to a conversation), leaving the slot's tokens
        in place: a new prompt that shares a beginning with them (the system prompt) still reuses it."""
        if slot.key is None or not slot.tokens:
            return
        state, size = self.backend.save(slot.index)
        self.stats.saved += 1
        self.saved[slot.key] = _Saved(list(slot.tokens), state, size)
        self.saved_bytes += size
        while self.saved_bytes > self.budget_bytes and self.saved:
            _, dropped = self.saved.popitem(last=False)
            self.saved_bytes -= dropped.size
            self.stats.dropped += 1
        slot.key = None
