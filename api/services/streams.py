"""Caps on open event streams and long polls: per person and for everyone, each with a lifetime.

Every open stream holds a connection and wakes on each change of its task; without caps one
client could open thousands and slow the gateway for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from api.services import TooManyStreams


class StreamSlots:
    def __init__(self, per_user: int, total: int, lifetime: float) -> None:
        self.per_user = per_user
        self.total = total
        self.lifetime = lifetime
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def check(self, user_id: str) -> None:
        """TooManyStreams when one more stream of `user_id` would be over a cap."""
        if self._open[user_id] >= self.per_user:
            raise TooManyStreams(f"At most {self.per_user} open streams per person; close one first.")
        if self.open >= self.total:
            raise TooManyStreams("Too many open streams right now; please try again shortly.")

    def acquire(self, user_id: str) -> None:
        """Count one more stream of `user_id`; TooManyStreams when over a cap."""
        self.check(user_id)
        self._open[user_id] += 1

    def release(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]

    @contextlib.contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        self.acquire(user_id)
        try:
            yield
        finally:
            self.release(user_id)

    def ending(self, disconnected: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
        """`disconnected`, also true once the stream has lived its lifetime."""
        deadline = asyncio.get_running_loop().time() + self.lifetime

        async def over() -> bool:
            return asyncio.get_running_loop().time() >= deadline or await disconnected()

        return over
