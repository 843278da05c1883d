"""Following a task as it changes, for streaming responses (Server-Sent Events, OpenAI chunks)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from api.services.tasks import get_status
from shared.db import Database
from shared.models import FINAL_STATUSES
from shared.schemas import TaskOut

# How often a follower looks at the task: well under the worker's 0.25 s publishing interval.
POLL_SECONDS = 0.1


async def follow(
    db: Database,
    task_id: str,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
    poll: float = POLL_SECONDS,
) -> AsyncIterator[TaskOut]:
    """Yield the task's status each time it changes, ending with its final state.

    Stops early (without a final state) when `disconnected()` says the client went away.
    """
    last: tuple[object, ...] | None = None
    while True:
        status = await run_in_threadpool(get_status, db, task_id)
        key = (status.status, status.position, status.partial_text, status.answer)
        if key != last:
            last = key
            yield status
        if status.status in FINAL_STATUSES:
            return
        if disconnected is not None and await disconnected():
            return
        await asyncio.sleep(poll)


class TextDiff:
    """Turns successive snapshots of a growing text into the pieces added each time."""

    def __init__(self) -> None:
        self.sent = ""

    def delta(self, text: str | None) -> str:
        text = text or ""
        if not text.startswith(self.sent):
            # Never expected (answers only grow), but a client must not end up with a wrong text.
            piece, self.sent = text, text
            return piece
        piece, self.sent = text[len(self.sent) :], text
        return piece


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def task_events(
    db: Database, task_id: str, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """Server-Sent Events for one task: `status` (queue place), `delta` (new text), `done` (final)."""
    diff = TextDiff()
    async for status in follow(db, task_id, disconnected):
        if status.status in FINAL_STATUSES:
            rest = diff.delta(status.answer) if status.answer and status.answer.startswith(diff.sent) else ""
            if rest:
                yield sse("delta", {"text": rest})
            yield sse("done", status.model_dump(mode="json"))
            return
        if status.partial_text:
            piece = diff.delta(status.partial_text)
            if piece:
                yield sse("delta", {"text": piece})
        else:
            yield sse(
                "status",
                {
                    "status": status.status,
                    "position": status.position,
                    "estimated_wait_seconds": status.estimated_wait_seconds,
                },
            )
