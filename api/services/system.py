"""The state of the whole service, for operators (the bot's /status)."""

from __future__ import annotations

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select

from api.services.status import RECENT
from shared.config import ModelSettings
from shared.db import Database
from shared.jobs import count_worker_processes
from shared.models import Task, TaskStatus
from shared.schemas import SystemStatus


def system_status(db: Database, queue: Queue, model: ModelSettings) -> SystemStatus:
    """The queue, the workers, and the model: the one that wrote the latest answers, else the one
    configured (the workers read the same settings)."""
    with db.reading() as session:
        counts = dict(
            session.execute(
                select(Task.status, func.count())
                .where(Task.status.in_([TaskStatus.QUEUED, TaskStatus.STARTED]))
                .group_by(Task.status)
            ).all()
        )
        recent = session.execute(
            select(Task.model_name, Task.completion_tokens, Task.generation_seconds)
            .where(Task.status == TaskStatus.FINISHED, Task.completion_tokens > 0)
            .order_by(Task.finished_at.desc())
            .limit(RECENT)
        ).all()
    tokens = sum(r.completion_tokens for r in recent)
    seconds = sum(r.generation_seconds or 0 for r in recent)
    try:
        workers: int | None = count_worker_processes(queue)
    except RedisError:
        workers = None
    return SystemStatus(
        queued=counts.get(TaskStatus.QUEUED, 0),
        generating=counts.get(TaskStatus.STARTED, 0),
        workers=workers,
        model=recent[0].model_name if recent else model.display_name(),
        # The preset chosen, by MODEL_PRESET or (with no model named) by the machine's memory.
        preset=chosen.name if (chosen := model.choice()[0]) else None,
        recent_tokens_per_second=round(tokens / seconds, 2) if seconds else None,
    )
