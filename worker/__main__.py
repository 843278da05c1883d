"""Worker entry point: load the model once, then answer jobs in this same process.

RQ's default worker runs every job in a new child process. That would load the model again for
each job, and a process that forks after llama.cpp started its OpenMP threads can hang. So this
worker is RQ's `SimpleWorker`: jobs run one after another in the process that loaded the model.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
import uuid

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker

from shared.config import DatabaseSettings, ModelSettings, QueueSettings, WorkerSettings
from shared.db import Database
from shared.jobs import make_queue, make_redis
from shared.logging import configure_logging
from shared.recovery import recover, recovery_thread
from worker import tasks
from worker.llm import ChatModel, LlamaChatModel
from worker.model_source import ModelUnavailable, resolve_model_path
from worker.notices import ChangeNotices
from worker.reply import ReplyService

log = logging.getLogger("worker")


def load_model(settings: ModelSettings) -> ChatModel:
    """The configured model: a local GGUF (loaded now, once), or a remote OpenAI-compatible server."""
    if settings.llm_backend == "openai":
        from worker.remote_llm import OpenAIChatModel

        return OpenAIChatModel(settings)
    return LlamaChatModel(resolve_model_path(settings), settings)


def wait_for_redis(redis: Redis, every: float = 1.0) -> None:
    """Block until Redis answers: a worker started while Redis restarts waits instead of crashing."""
    waited = 0.0
    while True:
        try:
            redis.ping()
            return
        except RedisError as exc:
            if waited % 10 == 0:
                log.warning("waiting for Redis: %s", exc)
            time.sleep(every)
            waited += every


def _stop_was_requested(worker: SimpleWorker) -> bool:
    """Whether `work()` returned because of SIGTERM/SIGINT (RQ 3.0 keeps this in private fields)."""
    return bool(getattr(worker, "_stop_requested", True) or getattr(worker, "_shutdown_requested_date", True))


def run(model: ChatModel | None = None, burst: bool = False) -> None:
    """Build everything from the environment and work until stopped (or, with `burst`, until idle)."""
    model_settings = ModelSettings()
    worker_settings = WorkerSettings()
    queue_settings = QueueSettings()
    db = Database.from_settings(DatabaseSettings())
    name = worker_settings.worker_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    model = model or load_model(model_settings)
    redis = make_redis(queue_settings)
    queue = make_queue(queue_settings, redis)
    wait_for_redis(redis)
    recover(db, queue, queue_settings.task_stale_after_seconds)
    # Jobs run in this thread; repairs of other workers' tasks go on beside them.
    recovery = recovery_thread(db, queue, queue_settings.task_stale_after_seconds)
    recovery.start()
    notices = ChangeNotices(queue)
    tasks.install(ReplyService(db, model, model_settings, worker_settings, name, announce=notices))
    log.info("worker %s ready on queue %r", name, queue.name)
    try:
        # RQ's worker quits when Redis vanishes at the wrong moment; this process keeps its model
        # loaded, waits for Redis and works again, under a fresh name (the old one may linger).
        for attempt in itertools.count():
            worker = SimpleWorker(
                [queue], connection=redis, name=name if attempt == 0 else f"{name}-{attempt}"
            )
            try:
                worker.work(burst=burst, logging_level=os.environ.get("LOG_LEVEL", "INFO").upper())
            except RedisError as exc:
                log.warning("worker %s stopped on a Redis error: %s", worker.name, exc)
            if burst or _stop_was_requested(worker):
                break
            log.warning("worker %s lost Redis; working again once it is back", worker.name)
            wait_for_redis(redis)
    finally:
        recovery.stop()
        notices.stop()
        tasks.install(None)


def main() -> None:
    configure_logging()
    try:
        run()
    except ModelUnavailable as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
