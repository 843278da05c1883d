"""Several RQ workers in one process, one per answer written at once, all sharing its loaded model.

Each slot is an ordinary RQ `SimpleWorker` running in a thread of its own: it takes one job,
runs it to the end and takes the next, so rq-dashboard shows every job started and finished as
before, and RQ's own bookkeeping (registries, retries, failures) is untouched. While `PARALLEL`
slots each wait on their answer, the model's batching engine writes all of them in one loop.

Signals reach the main thread only: the first SIGTERM/SIGINT lets every slot finish its answer and
stop (idle slots stop within a couple of seconds); a second one stops the answers in flight, which
are marked as lost by the worker, as a single worker did before.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.timeouts import TimerDeathPenalty

from shared.jobs import SERIALIZER, is_ours, slot_worker_name

log = logging.getLogger("worker")

# How often an idle slot looks up from waiting for a job to see whether it should stop.
STOP_CHECK_SECONDS = 2.0


class _StopWaiting(Exception):
    """Out of RQ's wait for a job, which retries a lost Redis forever, once the slot is to stop."""


class SlotWorker(SimpleWorker):
    """An RQ worker that lives in a thread beside others of the same process."""

    # SIGALRM reaches the main thread only; a timer raises the job timeout in this slot's thread.
    death_penalty_class = TimerDeathPenalty

    def __init__(
        self,
        *args: Any,
        stopping: threading.Event,
        stop_check_seconds: float = STOP_CHECK_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = stopping
        self.stop_check_seconds = stop_check_seconds
        self.current_thread: int | None = None
        self._waiting_for_job = False

    def _install_signal_handlers(self) -> None:
        """The process's main thread handles signals for every slot."""

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        # RQ's wait for a job beats first in each round, also after each retry of a lost Redis: a
        # slot told to stop leaves there (only there: a job being finished beats too).
        if self._waiting_for_job and self.stopping.is_set():
            raise _StopWaiting
        super().heartbeat(*args, **kwargs)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        if timeout is None:  # burst mode: take what is there, or nothing
            return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
        while not self.stopping.is_set():
            self._waiting_for_job = True
            try:
                # RQ annotates whole seconds; Redis waits a fraction too (a test's worker: 0.1 s).
                check = self.stop_check_seconds
                result = super().dequeue_job_and_maintain_ttl(check, check)  # type: ignore[arg-type]
            except _StopWaiting:
                return None
            finally:
                self._waiting_for_job = False
            if result is not None:
                return result
        return None

    def unsubscribe(self) -> None:
        # RQ unsubscribes first and then tells its command listener to stop: woken by the reply
        # before it is told, the listener waits again, and each stop took a second (RQ's join
        # timeout). Told first, it ends on the reply.
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop()
        super().unsubscribe()  # type: ignore[no-untyped-call]

    def execute_job(self, job: Job, queue: Queue) -> None:
        if not is_ours(job):
            self._refuse(job, queue)
            return
        self.current_thread = threading.get_ident()
        try:
            super().execute_job(job, queue)
        finally:
            self.current_thread = None

    def _refuse(self, job: Job, queue: Queue) -> None:
        """Fail a job that is not ours without importing, calling or unpickling anything it names."""
        log.error("job=%s refused: it is not a reply to a task (whoever wrote it to Redis is not us)", job.id)
        with self.connection.pipeline() as pipeline:
            job.set_status(JobStatus.FAILED, pipeline=pipeline)
            queue.failed_job_registry.add(
                job, ttl=7 * 24 * 3600, exc_string="refused: not this worker's job", pipeline=pipeline
            )
            pipeline.execute()


class SlotPool:
    """`parallel` slot workers on one queue; `run()` returns when all of them have stopped."""

    def __init__(
        self,
        queue: Queue,
        redis: Redis,
        name: str,
        parallel: int,
        stop_check_seconds: float = STOP_CHECK_SECONDS,
    ) -> None:
        self.queue = queue
        self.redis = redis
        self.name = name
        self.parallel = parallel
        self.stopping = threading.Event()
        # How long a stop may wait for an idle slot; a worker in a test's thread stops sooner.
        self.stop_check_seconds = stop_check_seconds
        self.workers: list[SlotWorker] = []
        self._lock = threading.Lock()
        self._signals = 0

    def run(self, burst: bool, logging_level: str, wait_for_redis: Any) -> None:
        threads = [
            threading.Thread(
                target=self._run_slot, args=(i, burst, logging_level, wait_for_redis), name=f"slot-{i}"
            )
            for i in range(self.parallel)
        ]
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=1)  # a timed join lets the main thread take signals

    def stop(self, force: bool = False) -> None:
        """Stop taking jobs; with `force`, also stop the answers being written."""
        self.stopping.set()
        with self._lock:
            workers = list(self.workers)
        for worker in workers:
            worker._stop_requested = True
            if force and worker.current_thread is not None:
                # As RQ's own cold shutdown does in a single worker: SystemExit where the job runs.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(worker.current_thread), ctypes.py_object(SystemExit)
                )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "worker %s: %s, finishing the answers in progress", self.name, signal.Signals(signum).name
            )
            self.stop()
        else:
            log.warning(
                "worker %s: %s again, stopping the answers in progress",
                self.name,
                signal.Signals(signum).name,
            )
            self.stop(force=True)

    def _run_slot(self, index: int, burst: bool, logging_level: str, wait_for_redis: Any) -> None:
        try:
            self._slot(index, burst, logging_level, wait_for_redis)
        except SystemExit:
            # A forced stop's SystemExit lands at the slot thread's next step, which may come after
            # its answer has ended (RQ then marking the worker idle): the stop it was, either way.
            if not self.stopping.is_set():
                raise
            log.info("worker %s slot %d stopped with its answer", self.name, index)

    def _slot(self, index: int, burst: bool, logging_level: str, wait_for_redis: Any) -> None:
        base = slot_worker_name(self.name, index)
        attempt = 0
        # RQ's worker quits when Redis vanishes at the wrong moment; the slot waits for Redis and
        # works again, under a fresh name (the old one may linger until its key expires).
        while True:
            worker = SlotWorker(
                [self.queue],
                connection=self.redis,
                name=base if attempt == 0 else f"{base}-{attempt}",
                serializer=SERIALIZER,
                stopping=self.stopping,
                stop_check_seconds=self.stop_check_seconds,
            )
            with self._lock:
                self.workers.append(worker)
            try:
                worker.work(burst=burst, logging_level=logging_level)
            except RedisError as exc:
                log.warning("worker %s stopped on a Redis error: %s", worker.name, exc)
            finally:
                with self._lock:
                    self.workers.remove(worker)
            if burst or self.stopping.is_set():
                return
            log.warning("worker %s lost Redis; working again once it is back", worker.name)
            if not wait_for_redis(self.redis, stopping=self.stopping):
                return  # told to stop while Redis was away
            attempt += 1
