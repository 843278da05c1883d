"""Prometheus metrics, computed from the database and Redis at scrape time."""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select

from api.services.pacing import Pacer
from shared.db import Database
from shared.jobs import count_worker_processes
from shared.models import Task, TaskStatus

# Latency figures summarise the most recent answers, so a scrape costs the same at any age.
WINDOW = 200


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{labels} {value:g}" for labels, value in samples]

    def summary(self, name: str, help_: str, values: Sequence[float]) -> None:
        samples = [(f'{{quantile="{q}"}}', _quantile(values, q)) for q in (0.5, 0.95)] if values else []
        self.metric(name, "summary", help_, [*samples, ("_count", len(values)), ("_sum", sum(values))])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(db: Database, queue: Queue, pacer: Pacer | None = None) -> str:
    out = _Exposition()
    with db.reading() as session:
        by_status = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
        recent = session.execute(
            select(
                Task.created_at,
                Task.started_at,
                Task.finished_at,
                Task.completion_tokens,
                Task.generation_seconds,
            )
            .where(Task.status == TaskStatus.FINISHED, Task.started_at.is_not(None))
            .order_by(Task.finished_at.desc())
            .limit(WINDOW)
        ).all()
    out.metric(
        "ai_assistant_tasks",
        "gauge",
        "Tasks in the database by status.",
        [(f'{{status="{s.value}"}}', by_status.get(s, 0)) for s in TaskStatus],
    )
    out.metric(
        "ai_assistant_queue_length",
        "gauge",
        "Tasks waiting for a worker.",
        [("", by_status.get(TaskStatus.QUEUED, 0))],
    )
    try:
        workers: float = count_worker_processes(queue)
    except RedisError:
        workers = float("nan")
    out.metric(
        "ai_assistant_workers",
        "gauge",
        "Live workers on the queue (NaN: Redis unreachable).",
        [("", workers)],
    )
    tokens = sum(r.completion_tokens or 0 for r in recent)
    seconds = sum(r.generation_seconds or 0 for r in recent)
    out.metric(
        "ai_assistant_generation_tokens_per_second",
        "gauge",
        f"Generation speed over the last {WINDOW} answers.",
        [("", tokens / seconds if seconds else 0.0)],
    )
    out.summary(
        "ai_assistant_queue_wait_seconds",
        f"Time from request to start, last {WINDOW} answers.",
        [(r.started_at - r.created_at).total_seconds() for r in recent],
    )
    out.summary(
        "ai_assistant_end_to_end_seconds",
        f"Time from request to finished answer, last {WINDOW} answers.",
        [(r.finished_at - r.created_at).total_seconds() for r in recent if r.finished_at],
    )
    if pacer is not None:
        out.metric(
            "ai_assistant_paced_requests_total",
            "counter",
            "Requests slowed or refused so that polling and writes cannot take the box (this process).",
            [
                ('{kind="poll_held"}', pacer.polls_held),
                ('{kind="read_held"}', pacer.reads_held),
                ('{kind="read_refused"}', pacer.reads_refused),
                ('{kind="write_refused"}', pacer.writes_refused),
            ],
        )
    return out.text()
