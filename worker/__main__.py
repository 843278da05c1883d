"""Worker entry point: load the model once, then answer jobs in this same process.

RQ's default worker runs every job in a new child process. That would load the model again for
each job, and a process that forks after llama.cpp started its OpenMP threads can hang. So jobs
run in the process that loaded the model: `PARALLEL` RQ `SimpleWorker`s in threads (see
`worker.slots`), whose answers the model writes together (see `worker.batching`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from shared.config import (
    DatabaseSettings,
    DocumentSettings,
    LoggingSettings,
    ModelSettings,
    QueueSettings,
    VoiceSettings,
    WorkerSettings,
)
from shared.db import Database
from shared.jobs import make_queue, make_redis, requeue_unreadable_jobs
from shared.logging import configure_logging
from shared.presets import wants_embedder
from shared.recovery import Periodic, recover, recovery_thread
from worker import tasks
from worker.cancels import CancelNotices
from worker.documents import DocumentWork
from worker.embedder import Embedder
from worker.embeddings import EmbeddingWork, embedding_source
from worker.llm import ChatModel, LlamaChatModel
from worker.model_source import ModelUnavailable, resolve_model_path
from worker.notices import ChangeNotices
from worker.reply import ReplyService
from worker.slots import STOP_CHECK_SECONDS, SlotPool
from worker.speech import Transcriber
from worker.voice import VoiceWork

log = logging.getLogger("worker")


def load_model(settings: ModelSettings, parallel: int = 1) -> ChatModel:
    """The configured model: a local GGUF (loaded now, once), or a remote OpenAI-compatible server."""
    if settings.llm_backend == "openai":
        from worker.remote_llm import OpenAIChatModel

        return OpenAIChatModel(settings)
    log.info("%s", settings.describe_choice())
    return LlamaChatModel(resolve_model_path(settings), settings, parallel=parallel)


def wait_for_redis(redis: Redis, every: float = 1.0, stopping: threading.Event | None = None) -> bool:
    """Block until Redis answers: a worker started while Redis restarts waits instead of crashing.

    False, without Redis, once `stopping` is set: a worker told to stop while Redis is away stops
    (it waited for Redis forever, with its SIGTERM taken, before).
    """
    waited = 0.0
    while True:
        try:
            redis.ping()
            return True
        except RedisError as exc:
            if waited % 10 == 0:
                log.warning("waiting for Redis: %s", exc)
            if stopping is None:
                time.sleep(every)
            elif stopping.wait(every):
                return False
            waited += every


def run(
    model: ChatModel | None = None,
    burst: bool = False,
    env_file: str | None = ".env",
    on_ready: Callable[[SlotPool], None] | None = None,
    stop_check_seconds: float = STOP_CHECK_SECONDS,
) -> None:
    """Build everything from the environment (and `env_file`) and work until stopped (or, with
    `burst`, until idle). `on_ready` gets the slots once they are built: whoever runs the worker in
    a thread of its own (the bot's tests) stops it through them, as a signal would. Idle threads
    look for a stop every `stop_check_seconds`: the longest a stop waits for them."""
    model_settings = ModelSettings(_env_file=env_file)
    worker_settings = WorkerSettings(_env_file=env_file)
    queue_settings = QueueSettings(_env_file=env_file)
    db = Database.from_settings(DatabaseSettings(_env_file=env_file))
    name = worker_settings.worker_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    parallel = worker_settings.answers_at_once(model_settings)
    model = model or load_model(model_settings, parallel)
    redis = make_redis(queue_settings)
    queue = make_queue(queue_settings, redis)
    wait_for_redis(redis)
    for task_id in requeue_unreadable_jobs(queue):
        log.warning("task=%s: its job was written by an earlier release; queued again", task_id)
    document_settings = DocumentSettings(_env_file=env_file)
    longest_read = document_settings.longest_read_seconds()
    recover(db, queue, queue_settings.task_stale_after_seconds, longest_read)
    # Jobs run in the slots' threads; repairs of other workers' tasks go on beside them.
    recovery = recovery_thread(db, queue, queue_settings.task_stale_after_seconds, longest_read)
    background = [recovery]
    notices = ChangeNotices(queue)
    voice_settings = VoiceSettings(_env_file=env_file)
    # The speech model is loaded on the first voice note, never when voice is off.
    transcriber = (
        Transcriber(voice_settings, model_settings.n_threads, model_settings.models_dir)
        if voice_settings.voice_enabled
        else None
    )
    voice = VoiceWork(db, transcriber, name, notices, voice_settings.voice_keep_seconds)
    if transcriber is not None:
        background.append(Periodic("speech-idle", 30, transcriber.unload_if_idle))
    cancels = CancelNotices(redis, queue.name, read_seconds=stop_check_seconds)
    cancels.start()
    # The document embedder is loaded by the first document (or question asked of one), if on.
    embedder = (
        Embedder(document_settings.embedder_files(model_settings.models_dir))
        if wants_embedder(document_settings.document_embedder, model_settings.box_mb())
        else None
    )
    documents = DocumentWork(db, document_settings, name, notices, embedder)
    embeddings = EmbeddingWork(
        db, embedding_source(model_settings, document_settings, embedder), name, notices
    )
    tasks.install(
        ReplyService(
            db,
            model,
            model_settings,
            worker_settings,
            name,
            announce=notices,
            voice=voice,
            cancels=cancels,
            documents=documents,
            embeddings=embeddings,
        )
    )
    for thread in background:
        thread.start()
    log.info(
        "worker %s ready on queue %r, %d answers at once%s",
        name,
        queue.name,
        parallel,
        "" if worker_settings.parallel else " (PARALLEL unset: what fits with this model and memory)",
    )
    try:
        pool = SlotPool(queue, redis, name, parallel, stop_check_seconds)
        if on_ready is not None:
            on_ready(pool)
        pool.run(burst, LoggingSettings(_env_file=env_file).log_level.upper(), wait_for_redis)
    finally:
        for thread in background:
            thread.stop()
        notices.stop()
        cancels.stop()
        tasks.install(None)
        model.close()


def main() -> None:
    configure_logging()
    try:
        run()
    except ModelUnavailable as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
