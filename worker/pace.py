"""How often an answer's new text is sent to those following it, given how many are being written.

Each send wakes the gateway, which hands the piece to every follower, and each follower then asks
again: a few milliseconds of CPU spread over other processes. On two cores that time is taken from
llama.cpp's threads in the middle of a step, and a step waits for its slowest thread, so every
answer's tokens slow down. Sends are therefore paced for the worker as a whole: one answer alone is
sent every PARTIAL_INTERVAL_SECONDS, and with several being written at once each is sent that many
times less often, so the sends per second stay the same (measured at 1.5B with 4 people: 37.0
tokens/s in total with every answer sent each 0.25 s, 40.6 with each sent every second, beside
llama-server's 41.8). An answer's first words are still sent at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Pace:
    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._writing = 0
        self._lock = threading.Lock()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Held while one answer is being written (and sent as it grows)."""
        with self._lock:
            self._writing += 1
        try:
            yield
        finally:
            with self._lock:
                self._writing -= 1

    def interval(self) -> float:
        """Seconds between two sends of one answer's new text, as things stand now."""
        return self.interval_seconds * max(1, self._writing)
