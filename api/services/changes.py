"""Waking the requests that follow a task as soon as a worker announces a change to it.

Workers publish a task's id on a Redis channel after each change they commit (`announce_change`),
and between saves the text an answer grew by (`Growth`). One subscription per gateway process
hands these notices to the requests waiting on that task. The database stays the source of truth:
a follower reads it (or the status cache) after every wake-up, and also every `fallback` seconds on
its own, and sees the answer so far as `LiveTexts` joined it from the growths since the last save.
So a lost notice or an absent Redis makes it slower, never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.services.live_text import LiveTexts
from api.services.status_cache import StatusCache
from shared.jobs import Growth, decode_notice

log = logging.getLogger(__name__)

# How long a follower waits for a notice before it looks anyway: while subscribed (it catches what
# no notice announces, such as a queue position moving) and while not (Redis away: plain polling).
FALLBACK_SECONDS = 0.5
UNSUBSCRIBED_POLL_SECONDS = 0.1
_RECONNECT_SECONDS = 1.0
_CLOSE_SECONDS = 5.0


class TaskChanges:
    """One gateway process's subscription to task change notices, fanned out to waiting requests."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self._redis_url = redis_url
        self._channel = channel
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._listening: asyncio.Task[None] | None = None
        self._closing = False
        self.subscribed = False
        self.cache = StatusCache()
        self.live = LiveTexts()

    def start(self) -> None:
        """Start receiving notices, in a task of the running event loop."""
        self._listening = asyncio.create_task(self._listen(), name="task-changes")

    async def aclose(self) -> None:
        """Stop receiving notices.

        Cancelling alone is not enough: the Redis client can absorb a cancel (seen with its endless
        pub/sub read), so the loop also checks a flag between reads of at most a second.
        """
        self._closing = True
        if self._listening is None:
            return
        self._listening.cancel()
        await asyncio.wait({self._listening}, timeout=_CLOSE_SECONDS)
        if not self._listening.done():
            log.warning("the task change subscription did not stop within %ss", _CLOSE_SECONDS)

    async def _listen(self) -> None:
        """Receive notices until closed, subscribing again after a lost connection."""
        while not self._closing:
            client = Redis.from_url(self._redis_url, socket_connect_timeout=2)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.subscribed = self.cache.enabled = True
                    # Notices sent while we were away are lost: let every follower look again.
                    self._wake_all()
                    # Short reads, not `listen()`: the client's endless read can absorb a cancel,
                    # and this loop must end soon after `aclose()` however it is interrupted.
                    while not self._closing:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            self._wake(message["data"].decode("utf-8", "replace"))
            except (RedisError, OSError) as exc:
                if self.subscribed and not self._closing:
                    log.warning("task change notices interrupted, followers poll meanwhile: %s", exc)
            finally:
                self.subscribed = self.cache.enabled = False
                self.cache.clear()
                await client.aclose()
            if not self._closing:
                await asyncio.sleep(_RECONNECT_SECONDS)

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `task_id` is announced as changed, while the block runs.

        Clear it before each read of the task: a change committed after the clear sets it again.
        """
        event = asyncio.Event()
        self._waiting.setdefault(task_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiting.get(task_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[task_id]

    def watching(self, task_id: str) -> bool:
        """Whether some request is following `task_id` now (tests wait for this, not for time)."""
        return bool(self._waiting.get(task_id))

    async def wait(self, changed: asyncio.Event, timeout: float | None = None) -> bool:
        """Wait until `changed` is set or it is time to look anyway; True when a notice came."""
        limit = FALLBACK_SECONDS if self.subscribed else UNSUBSCRIBED_POLL_SECONDS
        timeout = limit if timeout is None else min(timeout, limit)
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _wake(self, payload: str) -> None:
        notice = decode_notice(payload)
        if notice is None:
            return
        if isinstance(notice, Growth):
            if not self.live.grow(notice):
                return  # nothing new to show
            task_id = notice.task_id  # the row did not change: its cached copy stays right
        else:
            task_id = notice
            self.cache.changed(task_id)
        for event in self._waiting.get(task_id, ()):
            event.set()

    def _wake_all(self) -> None:
        self.cache.clear()
        for events in self._waiting.values():
            for event in events:
                event.set()
