"""Change notices sent from a thread of their own, so that a slow or unreachable Redis never holds up
the answer being written: the database has the change already, and a notice only saves waiting."""

from __future__ import annotations

import logging
import queue
import threading

from rq import Queue

from shared.jobs import Notice, announce_change

log = logging.getLogger(__name__)

# Notices waiting while Redis does not answer; more are dropped (followers also look on their own).
_BACKLOG = 1000


class ChangeNotices:
    """`notices(task_id)` (or `notices(growth)`) queues a notice and returns at once; a daemon
    thread publishes them, in order: a growth never overtakes the save or the end before it."""

    def __init__(self, jobs: Queue) -> None:
        self._jobs = jobs
        self._pending: queue.Queue[Notice | None] = queue.Queue(maxsize=_BACKLOG)
        self._thread = threading.Thread(target=self._publish, name="change-notices", daemon=True)
        self._thread.start()

    def __call__(self, notice: Notice) -> None:
        try:
            self._pending.put_nowait(notice)
        except queue.Full:
            # A dropped growth leaves a gap the gateway fills from the next save of the whole text.
            log.debug("change notice dropped: Redis is not keeping up")

    def _publish(self) -> None:
        while (notice := self._pending.get()) is not None:
            announce_change(self._jobs, notice)

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued (for up to `timeout` seconds), then end the thread."""
        try:
            self._pending.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
