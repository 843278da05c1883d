"""Following a task as it changes, for streaming responses (Server-Sent Events, OpenAI chunks)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Protocol, TypeVar

from starlette.concurrency import run_in_threadpool

from api.services.changes import TaskChanges
from api.services.tasks import get_status
from shared.db import Database
from shared.models import FINAL_STATUSES, TaskStatus
from shared.schemas import TaskOut

T = TypeVar("T")


async def reads(
    changes: TaskChanges,
    item_id: str,
    look: Callable[[], Awaitable[T]],
    deadline: float | None = None,
) -> AsyncGenerator[T]:
    """`look()` now, then again after each change notice for `item_id` (or each look of its own):
    a task's status (`current_status`), or anything else announced under its id (a voice note).

    The waits between looks end by `deadline` (event-loop time), if one is given.
    """
    loop = asyncio.get_running_loop()
    with changes.watch(item_id) as changed:
        while True:
            changed.clear()  # before the look: a change announced after it sets the event again
            yield await look()
            await changes.wait(changed, None if deadline is None else deadline - loop.time())


class _Settles(Protocol):
    @property
    def status(self) -> str: ...


S = TypeVar("S", bound=_Settles)


async def settled(
    changes: TaskChanges, item_id: str, look: Callable[[], Awaitable[S]], timeout: float
) -> S | None:
    """What `look()` gives once its status is final, looked at again after each change notice for
    `item_id`; None when it is still not final after `timeout` seconds (the caller gives up on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with contextlib.aclosing(reads(changes, item_id, look, deadline)) as looks:
        async for result in looks:
            if result.status in FINAL_STATUSES:
                return result
            if loop.time() >= deadline:
                break
    return None


async def current_status(db: Database, changes: TaskChanges, task_id: str) -> TaskOut:
    """The task's status as the database has it (or the status cache's copy, while no change was
    announced), with the answer so far as far as the worker's growth notices since its last save
    tell."""
    status = changes.cache.get(task_id)
    if status is None:
        generation = changes.cache.generation(task_id)
        status = await run_in_threadpool(get_status, db, task_id)
        changes.cache.put(task_id, generation, status)
    if status.status in FINAL_STATUSES:
        changes.live.forget(task_id)  # the answer is saved whole
        return status
    if status.status != TaskStatus.STARTED:
        return status
    text = changes.live.current(task_id, status.partial_text)
    return status if text == status.partial_text else status.model_copy(update={"partial_text": text})


async def follow(
    db: Database,
    changes: TaskChanges,
    task_id: str,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[TaskOut]:
    """Yield the task's status each time it changes, ending with its final state.

    The task is looked at again as soon as a worker announces a change or more text (and now and
    then regardless). Stops early (without a final state) when `disconnected()` says the client
    went away.
    """
    last: tuple[object, ...] | None = None
    look = partial(current_status, db, changes, task_id)
    async with contextlib.aclosing(reads(changes, task_id, look)) as looks:
        async for status in looks:
            key = (status.status, status.position, status.partial_text, status.answer)
            if key != last:
                last = key
                yield status
            if status.status in FINAL_STATUSES:
                return
            if disconnected is not None and await disconnected():
                return


def _matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    given = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return "*" in given or tag in given


async def status_document(db: Database, changes: TaskChanges, task_id: str) -> tuple[str, str, TaskStatus]:
    """The task's status as JSON, its ETag and status (`current_status`)."""
    status = await current_status(db, changes, task_id)
    document = status.model_dump_json()
    # A strong validator: equal tags mean equal documents.
    tag = '"' + hashlib.blake2b(document.encode(), digest_size=12).hexdigest() + '"'
    return document, tag, status.status


async def status_once_changed(
    db: Database, changes: TaskChanges, task_id: str, if_none_match: str | None, wait: float
) -> tuple[str, str, bool]:
    """The task's status document (JSON) and ETag, waiting up to `wait` seconds while the tag
    matches `if_none_match`.

    Returns (document, tag, changed): `changed` is False when the client's copy is still current.
    This is a long poll: a client learns of each change (the final answer above all) at once,
    without asking many times a second.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with changes.watch(task_id) as changed:
        while True:
            changed.clear()  # before the read: a change committed after it sets the event again
            document, tag, state = await status_document(db, changes, task_id)
            if not _matches(if_none_match, tag):
                return document, tag, True
            if state in FINAL_STATUSES or loop.time() >= deadline:
                return document, tag, False
            await changes.wait(changed, deadline - loop.time())


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
    db: Database, changes: TaskChanges, task_id: str, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """Server-Sent Events for one task: `status` (queue place), `voice` (a voice note's words, once
    heard), `delta` (new text), `done` (final)."""
    diff = TextDiff()
    heard = False
    async for status in follow(db, changes, task_id, disconnected):
        if status.voice is not None and status.voice.transcript is not None and not heard:
            heard = True  # a voice note's words, once known: `voice`, before any of the answer
            yield sse("voice", status.voice.model_dump(mode="json"))
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
                    "voice": status.voice.model_dump(mode="json") if status.voice else None,
                },
            )
