"""Run several processes in the foreground: restart the ones that die, stop all on Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from stack.lifeline import bound_popen

log = logging.getLogger("stack")

_MAX_BACKOFF = 30.0
# A process that ran this long before dying is restarted after the first pause again, not a longer one.
_HEALTHY_AFTER = 60.0


@dataclass
class Backoff:
    """The pause before starting again what stopped: 1 s, doubling with each quick failure up to
    30 s, and 1 s again after a run that lasted."""

    pause: float = 1.0

    def after(self, ran_for: float) -> float:
        if ran_for > _HEALTHY_AFTER:
            self.pause = 1.0
        pause, self.pause = self.pause, min(self.pause * 2, _MAX_BACKOFF)
        return pause


@dataclass
class Service:
    name: str
    command: Sequence[str]
    env: dict[str, str] | None = None
    stop_timeout: float = 10.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        # A session of its own: Ctrl-C reaches only the supervisor, which stops children in order.
        self.process = bound_popen(list(self.command), env=self.env, start_new_session=True)
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %d)", self.name, self.process.pid)


class Supervisor:
    """Keeps every service running until `stop()` or a SIGINT/SIGTERM."""

    def __init__(self, services: Sequence[Service], poll_interval: float = 0.5) -> None:
        self.services = list(services)
        self.poll_interval = poll_interval
        self._stopping = False

    def request_stop(self, *_args: object) -> None:
        self._stopping = True

    def start(self) -> None:
        """Start every service not running yet; a Ctrl-C from here on stops them all."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        for service in self.services:
            if service.process is None:
                service.start()

    def run(self) -> None:
        self.start()
        try:
            while not self._stopping:
                self._tend()
                time.sleep(self.poll_interval)
        finally:
            self.stop()

    def _tend(self) -> None:
        now = time.monotonic()
        for service in self.services:
            process = service.process
            if service.restart_at is not None:
                if now >= service.restart_at:
                    service.restarts += 1
                    service.start()
                continue
            if process is None or process.poll() is None:
                continue
            pause = service.backoff.after(now - service.started_at)
            log.warning(
                "%s exited with code %s; restarting in %.0fs", service.name, process.returncode, pause
            )
            service.restart_at = now + pause

    def stop(self) -> None:
        """Stop services in reverse start order: SIGTERM, a second SIGTERM, then SIGKILL."""
        for service in reversed(self.services):
            process = service.process
            if process is None or process.poll() is not None:
                continue
            log.info("stopping %s", service.name)
            # The first SIGTERM asks for a clean exit; a second one tells an RQ worker to drop
            # the job in hand (it marks the task failed) instead of finishing it.
            for sig, wait in (
                (signal.SIGTERM, service.stop_timeout / 2),
                (signal.SIGTERM, service.stop_timeout / 2),
            ):
                process.send_signal(sig)
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                log.warning("%s did not stop in %.0fs; killing it", service.name, service.stop_timeout)
                process.kill()
                process.wait()


# glibc gives each thread that allocates a heap of its own (up to 8 per core); the gateway's thread
# pool and the worker's threads kept ~10 MB more of freed memory that way than with two (measured
# with `make bench`'s memory run, 0.5B on a 1 GB box). The hot paths (llama.cpp, CTranslate2) do
# not allocate per token, so fewer heaps to contend for is not expected to cost speed; not measured.
MALLOC_ARENAS = "2"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of the stack's processes: this one's, `extra` on top, and a cap on glibc's
    heaps unless the operator set one (MALLOC_ARENA_MAX)."""
    env = {"MALLOC_ARENA_MAX": MALLOC_ARENAS, **os.environ}
    env.update(extra)
    return env
