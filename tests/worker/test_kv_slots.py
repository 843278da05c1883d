"""Which conversation's context lives in which KV sequence: pure bookkeeping, checked with a fake backend."""

from __future__ import annotations

import random
from typing import Any

import pytest

from worker.kv_slots import SlotTable, common_prefix

BYTES_PER_TOKEN = 100


class FakeBackend:
    """Keeps each sequence's tokens as llama.cpp would keep their KV, and counts what was done."""

    def __init__(self, n_seq: int) -> None:
        self.cells: list[list[int]] = [[] for _ in range(n_seq)]
        self.saves = 0
        self.restores = 0
        self.sizes_asked = 0

    def save(self, seq: int) -> tuple[Any, int]:
        self.saves += 1
        return list(self.cells[seq]), len(self.cells[seq]) * BYTES_PER_TOKEN

    def state_size(self, seq: int) -> int:
        self.sizes_asked += 1
        return len(self.cells[seq]) * BYTES_PER_TOKEN

    def restore(self, seq: int, state: Any) -> bool:
        assert self.cells[seq] == [], "restoring into a sequence that still holds something"
        self.restores += 1
        self.cells[seq] = list(state)
        return True

    def trim(self, seq: int, keep: int) -> None:
        del self.cells[seq][keep:]

    def compute(self, seq: int, tokens: list[int]) -> None:
        self.cells[seq].extend(tokens)


def turn(
    table: SlotTable,
    backend: FakeBackend,
    key: str | None,
    prompt: list[int],
    answer: list[int],
    park: bool = False,
    shared: int = 0,
) -> int:
    """One answer as the engine runs it: acquire, (move idle ones out,) compute the rest of the prompt
    (saving the shared beginning once reading reaches its end) and the answer, release.

    Returns how many prompt tokens had to be computed."""
    slot, keep = table.acquire(key, prompt, shared)
    if park:
        table.park_idle()
    assert backend.cells[slot.index] == prompt[:keep], "the sequence does not hold what the table says"
    if keep < shared and table.wants_prefix(prompt[:shared]):
        backend.compute(slot.index, prompt[keep:shared])
        slot.tokens.extend(prompt[keep:shared])
        table.remember_prefix(slot)
        keep, computed_before = shared, shared - keep
    else:
        computed_before = 0
    computed = prompt[keep:] + answer
    backend.compute(slot.index, computed)
    slot.tokens.extend(computed)
    table.release(slot)
    return computed_before + len(prompt) - keep


def test_a_conversation_keeps_its_sequence_while_others_are_answered() -> None:
    backend = FakeBackend(2)
    table = SlotTable(2, backend, budget_bytes=10**9)
    alice = [1, 2, 3, 4]
    assert turn(table, backend, "alice", alice, [5, 6]) == 4
    turn(table, backend, "bob", [1, 2, 9, 9], [7])
    # Alice's next turn: her whole history plus the new message; only the new part is computed.
    assert turn(table, backend, "alice", [*alice, 5, 6, 10, 11], [12]) == 2
    assert backend.saves == 0


def test_evicted_contexts_are_saved_and_restored_not_recomputed() -> None:
    backend = FakeBackend(1)
    table = SlotTable(1, backend, budget_bytes=10**9)
    turn(table, backend, "alice", [1, 2, 3], [4])
    turn(table, backend, "bob", [1, 8, 8], [9])  # Alice's context goes to RAM
    assert list(table.saved) == ["alice"] and backend.saves == 1
    assert turn(table, backend, "alice", [1, 2, 3, 4, 5], [6]) == 1
    assert backend.restores == 1 and list(table.saved) == ["bob"]


def test_idle_conversations_move_to_ram_while_another_is_answered() -> None:
    backend = FakeBackend(2)
    table = SlotTable(2, backend, budget_bytes=10**9)
    turn(table, backend, "alice", [1, 2, 3], [4])
    bob, _ = table.acquire("bob", [1, 8, 8])
    assert table.park_idle() == 1
    # Only Bob's sequence holds anything while his answer is written; Alice's context is in RAM.
    assert [cells for i, cells in enumerate(backend.cells) if i != bob.index] == [[]]
    assert list(table.saved) == ["alice"]
    assert table.park_idle() == 0  # nothing left to move
    backend.compute(bob.index, [1, 8, 8, 9])
    bob.tokens.extend([1, 8, 8, 9])
    table.release(bob)
    # Alice comes back: her context is restored, only her new message is computed.
    assert turn(table, backend, "alice", [1, 2, 3, 4, 5], [6]) == 1
    assert backend.restores == 1 and table.stats.parked == 1


def test_an_idle_conversation_the_budget_has_no_room_for_stays_and_nothing_is_dropped() -> None:
    backend = FakeBackend(3)
    table = SlotTable(3, backend, budget_bytes=5 * BYTES_PER_TOKEN)
    turn(table, backend, "small", [1, 2], [3])  # 3 tokens: fits
    turn(table, backend, "big", [1, 2, 3, 4, 5, 6], [7])  # 7 tokens: never fits
    table.acquire("carol", [1, 9])
    assert table.park_idle() == 1
    assert list(table.saved) == ["small"] and table.stats.dropped == 0
    big = next(slot for slot in table.slots if slot.key == "big")
    assert backend.cells[big.index] == [1, 2, 3, 4, 5, 6, 7] == big.tokens
    # Asked once: a conversation that stays is not measured again at every step.
    asked = backend.sizes_asked
    table.park_idle()
    assert backend.sizes_asked == asked
    # It stays usable where it is: its next turn computes only the new tokens.
    assert turn(table, backend, "big", [1, 2, 3, 4, 5, 6, 7, 8], [9]) == 1


def test_the_last_prompt_token_is_always_computed() -> None:
    """Its logits choose the first new token, so even a fully cached prompt leaves one to compute."""
    backend = FakeBackend(1)
    table = SlotTable(1, backend, budget_bytes=10**9)
    turn(table, backend, "a", [1, 2, 3], [])
    assert turn(table, backend, "a", [1, 2, 3], []) == 1


def test_a_divergent_token_keeps_the_prefix_before_it() -> None:
    """Re-tokenizing a stored answer may give other tokens than were generated: only the rest is lost."""
    backend = FakeBackend(1)
    table = SlotTable(1, backend, budget_bytes=10**9)
    turn(table, backend, "a", [1, 2, 3], [40, 41, 42])
    assert turn(table, backend, "a", [1, 2, 3, 40, 99, 42, 7], [8]) == 3
    assert table.stats.reused_tokens == 4


def test_a_new_conversation_reuses_a_shared_beginning() -> None:
    backend = FakeBackend(1)
    table = SlotTable(1, backend, budget_bytes=10**9)
    system = [100, 101, 102, 103]
    turn(table, backend, "a", [*system, 1], [2])
    assert turn(table, backend, "b", [*system, 7], [8]) == 1


def test_a_new_conversation_restores_the_shared_beginning_instead_of_reading_it() -> None:
    backend = FakeBackend(2)
    table = SlotTable(2, backend, budget_bytes=10**9)
    system = list(range(100, 140))
    assert turn(table, backend, "a", [*system, 1, 2], [3], shared=len(system)) == len(system) + 2
    assert table.stats.prefixes_saved == 1
    # Another person, in the other (empty) sequence: only their own words are read.
    assert turn(table, backend, "b", [*system, 7, 8], [9], shared=len(system)) == 2
    # With idle sequences emptied while others are answered, the same.
    for n, key in enumerate(["c", "d", "e"]):
        assert turn(table, backend, key, [*system, 50 + n], [9], park=True, shared=len(system)) == 1
    assert table.stats.prefixes_restored >= 3 and table.stats.prefixes_saved == 1
    # A conversation's own next turn still comes from its own context, not the beginning.
    assert turn(table, backend, "b", [*system, 7, 8, 9, 10], [11], shared=len(system)) == 1
    # Another system prompt is read, and saved in its turn.
    other = list(range(200, 230))
    assert turn(table, backend, "f", [*other, 1], [2], shared=len(other)) == len(other) + 1


def test_shared_beginnings_are_few_and_within_their_share_of_the_budget() -> None:
    backend = FakeBackend(1)
    budget = 40 * 50 * BYTES_PER_TOKEN
    table = SlotTable(1, backend, budget_bytes=budget)
    for n in range(10):
        system = [1000 * (n + 1) + t for t in range(50)]
        turn(table, backend, f"k{n}", [*system, 1], [2], shared=50)
        assert len(table.prefixes) <= 4
        assert table.prefix_bytes <= budget // 4
        assert table.prefix_bytes == sum(saved.size for saved in table.prefixes.values())
    # The newest are kept.
    assert tuple(1000 * 10 + t for t in range(50)) in table.prefixes


def test_the_budget_holds_under_twenty_conversations_cycling_through() -> None:
    rng = random.Random(4)
    backend = FakeBackend(4)
    budget = 40 * BYTES_PER_TOKEN * 6
    table = SlotTable(4, backend, budget_bytes=budget)
    histories: dict[str, list[int]] = {f"user{i}": [1000 + i] for i in range(20)}
    for _ in range(400):
        key = rng.choice(list(histories))
        prompt = histories[key] + [rng.randrange(50) for _ in range(rng.randrange(3, 12))]
        answer = [rng.randrange(50) for _ in range(rng.randrange(3, 12))]
        turn(table, backend, key, prompt, answer, park=True)
        histories[key] = prompt + answer
        assert table.saved_bytes <= budget
        assert table.saved_bytes == sum(s.size for s in table.saved.values())
    assert table.stats.dropped > 0 and table.stats.restored > 0 and table.stats.parked > 0


def test_no_free_sequence_is_an_error_not_a_silent_overwrite() -> None:
    backend = FakeBackend(1)
    table = SlotTable(1, backend, budget_bytes=10**9)
    table.acquire("a", [1, 2])
    assert not table.has_free()
    with pytest.raises(RuntimeError):
        table.acquire("b", [1, 2])


@pytest.mark.parametrize(
    ("a", "b", "expected"), [([], [1], 0), ([1, 2], [1, 2], 2), ([1, 2, 3], [1, 5], 1), ([1], [2], 0)]
)
def test_common_prefix(a: list[int], b: list[int], expected: int) -> None:
    assert common_prefix(a, b) == expected
