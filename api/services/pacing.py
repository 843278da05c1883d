"""Reads paced per client, so that polling cannot take the model's cores.

On a small box the gateway and the model share the cores: a client asking for a status as fast
as it can costs generation speed for everyone. Two rules, both in this process:

- A plain (not long) poll of the same task by the same client within `poll_interval` is held
  until the task changes or the interval has passed, then answered: a tight loop becomes a few
  requests a second, with no error for clients that simply poll.
- Each client has a budget of `per_second` reads (a burst of twice that), and all clients together
  `total_per_second`: a read over budget waits for its turn up to `MAX_HOLD` seconds (a client on
  one connection is simply slowed), beyond that, or with too many reads already held, it gets 429
  with Retry-After.

Long polls (If-None-Match with `wait`) are not counted: they cost nothing until something changes.

Writes (every method but GET, HEAD and OPTIONS) have a budget of their own per client, `writes_per_minute`
with bursts of a fifth of that: each takes the database's write lock and may add rows, so a client
over it is refused at once (429 with Retry-After), never held.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from api.services import RateLimited

MAX_HOLD = 1.0
MAX_HELD_PER_CLIENT = 8
_MAX_CLIENTS = 10_000


class _Bucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = burst, clock()

    def reserve(self) -> float:
        """Take one token, possibly ahead of time; returns how long to wait before using it."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= 1
        return max(0.0, -self.tokens / self.rate)

    def refund(self) -> None:
        self.tokens += 1


class Pacer:
    def __init__(
        self,
        poll_interval: float,
        per_second: float,
        total_per_second: float,
        writes_per_minute: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poll_interval = poll_interval
        self.per_second = per_second
        self.writes_per_second = writes_per_minute / 60
        self.clock = clock
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()
        self._writers: OrderedDict[str, _Bucket] = OrderedDict()
        self._total = _Bucket(total_per_second, 2 * total_per_second, clock)
        self._held: dict[str, int] = {}
        self._polled: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Counters for /metrics: how often clients were slowed or refused.
        self.polls_held = 0
        self.reads_held = 0
        self.reads_refused = 0
        self.writes_refused = 0

    def poll_delay(self, client: str, task_id: str) -> float:
        """Seconds a plain status poll must be held; the poll is counted as made when it is served."""
        now = self.clock()
        key = (client, task_id)
        last = self._polled.get(key)
        due = now if last is None else max(now, last + self.poll_interval)
        self._polled[key] = due
        self._polled.move_to_end(key)
        while len(self._polled) > _MAX_CLIENTS:
            self._polled.popitem(last=False)
        self.polls_held += due > now
        return due - now

    async def read(self, client: str, scale: float = 1.0) -> None:
        """Wait for this client's turn to read; RateLimited when the wait would be too long.

        `scale` multiplies the client's budget (the bot reads for many people)."""
        bucket = self._bucket(self._clients, client, self.per_second * scale, 2.0)
        delay = max(bucket.reserve(), self._total.reserve())
        if delay == 0:
            return
        held = self._held.get(client, 0)
        if delay > MAX_HOLD or held >= MAX_HELD_PER_CLIENT:
            bucket.refund()
            self._total.refund()
            self.reads_refused += 1
            raise RateLimited(retry_after=max(1, math.ceil(delay)))
        self._held[client] = held + 1
        self.reads_held += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]

    def write(self, client: str) -> None:
        """Count one write against this client's budget; RateLimited, at once, when it is spent."""
        bucket = self._bucket(self._writers, client, self.writes_per_second, 12.0)
        delay = bucket.reserve()
        if delay > 0:
            bucket.refund()
            self.writes_refused += 1
            raise RateLimited(retry_after=max(1, math.ceil(delay)))

    def _bucket(
        self, buckets: OrderedDict[str, _Bucket], client: str, rate: float, seconds: float
    ) -> _Bucket:
        """`client`'s bucket, made full on first use: `rate` a second, a burst of `seconds` of it."""
        bucket = buckets.get(client)
        if bucket is None:
            bucket = buckets[client] = _Bucket(rate, max(1.0, seconds * rate), self.clock)
            while len(buckets) > _MAX_CLIENTS:
                buckets.popitem(last=False)
        buckets.move_to_end(client)
        return bucket
