"""Cancels heard at once: the gateway publishes a started task's id when its cancel is asked for,
and this process's listener flags the answer being written, which stops at its next token.

The database's `cancel_requested` stays the record that counts: a notice lost (Redis restarting, a
listener reconnecting) is caught when the answer is next published, as before."""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

from shared.jobs import cancels_channel

log = logging.getLogger(__name__)

# How long one wait for a message lasts: the longest a `stop()` waits for the thread.
_READ_SECONDS = 1.0
_RETRY_SECONDS = 2.0


class CancelNotices:
    """Which answers of this process were asked to stop, learned from Redis as it happens."""

    def __init__(self, redis: Redis, queue_name: str, read_seconds: float = _READ_SECONDS) -> None:
        self._redis = redis
        self._read_seconds = read_seconds
        self._channel = cancels_channel(queue_name)
        self._watched: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="cancel-notices", daemon=True)
        self.subscribed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._read_seconds * 3)

    def watch(self, task_id: str) -> threading.Event:
        """The flag that is set when a cancel of `task_id` is heard (until `forget`)."""
        with self._lock:
            return self._watched.setdefault(task_id, threading.Event())

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._watched.pop(task_id, None)

    def _heard(self, task_id: str) -> None:
        with self._lock:
            flag = self._watched.get(task_id)
        if flag is not None:
            log.info("task=%s cancel heard", task_id)
            flag.set()

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self._channel)
                    self.subscribed.set()
                    while not self._stopped.is_set():
                        message = pubsub.get_message(timeout=self._read_seconds)
                        if message and message["type"] == "message":
                            data = message["data"]
                            self._heard(data.decode() if isinstance(data, bytes) else str(data))
            except RedisError as exc:
                self.subscribed.clear()
                log.warning(
                    "cancel notices interrupted (%s); cancels are read from the database meanwhile", exc
                )
                self._stopped.wait(_RETRY_SECONDS)
