"""Statuses of recently read tasks, so an unchanged status costs no database read.

Every change a worker commits is announced (`TaskChanges`), and each notice drops that task's
entry (a growth of the answer does not: the row is unchanged, and `LiveTexts` adds the text). A
read that began before a notice must not store what it read: entries carry the task's notice count
("generation") from before the read, and a stale one is refused. While the subscription is down
nothing is served from here (a notice could be missed). Lifetimes bound what no notice announces:
a queued task's place moves when others start, a recovery pass may fail a silent task, and a task
can be deleted.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

from shared.models import TaskStatus
from shared.schemas import TaskOut

# Seconds an entry is trusted, by the task's status (followers look again on their own this often).
LIFETIME = {TaskStatus.QUEUED: 0.5, TaskStatus.STARTED: 5.0}
FINAL_LIFETIME = 10.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Cached:
    status: TaskOut
    expires: float


class StatusCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.enabled = False
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._generations: Counter[str] = Counter()
        # Bumped by clear(): a read that began before a reconnect is not trusted either.
        self._epoch = 0
        self._owners: OrderedDict[str, str] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, task_id: str) -> TaskOut | None:
        entry = self._entries.get(task_id) if self.enabled else None
        if entry is None or entry.expires < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry.status

    def generation(self, task_id: str) -> tuple[int, int]:
        return self._epoch, self._generations[task_id]

    def put(self, task_id: str, generation: tuple[int, int], status: TaskOut) -> None:
        """Keep what a read found, unless a notice for the task came while it was being read."""
        if not self.enabled or self.generation(task_id) != generation:
            return
        lifetime = LIFETIME.get(status.status, FINAL_LIFETIME)
        self._entries[task_id] = Cached(status, time.monotonic() + lifetime)
        self._entries.move_to_end(task_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def changed(self, task_id: str) -> None:
        self._entries.pop(task_id, None)
        if task_id in self._generations or len(self._generations) < self.max_entries:
            self._generations[task_id] += 1
        else:  # no room to count: forget everything rather than trust a count that was dropped
            self.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._generations.clear()
        self._epoch += 1

    def owner(self, task_id: str) -> str | None:
        return self._owners.get(task_id)

    def remember_owner(self, task_id: str, owner: str) -> None:
        # A task's owner never changes; a deleted task's entry only ages out.
        self._owners[task_id] = owner
        self._owners.move_to_end(task_id)
        while len(self._owners) > self.max_entries:
            self._owners.popitem(last=False)
