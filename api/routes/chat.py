"""Chat messages and their tasks: send, follow, cancel, regenerate, mark delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.auth import CallerDep, CallerRole, ServiceDep, guard_of
from api.deps import (
    ChangesDep,
    DbDep,
    GatewaySettingsDep,
    OwnedTaskDep,
    QueueDep,
    QueueSettingsDep,
    StreamsDep,
)
from api.services import TextTooLong, stream, tasks
from api.services.status import queue_position
from shared.db import Database
from shared.identity import is_telegram
from shared.jobs import announce_change
from shared.models import Task
from shared.schemas import ChatAccepted, ChatRequest, RegenerateRequest, TaskOut, TaskUpdate

router = APIRouter(prefix="/api", tags=["chat"])


def accepted(db: Database, task: Task) -> ChatAccepted:
    with db.reading() as session:
        position = queue_position(session, task)
    return ChatAccepted(
        task_id=task.id, status=task.status, position=position, conversation_id=task.conversation_id
    )


def submitted(db: Database, task: Task, replayed: bool, response: Response) -> ChatAccepted:
    """What a new message is answered with; a repeated idempotent request gets 200, flagged."""
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return accepted(db, task)


@router.post("/chat", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
def post_chat(
    body: ChatRequest,
    response: Response,
    caller: CallerDep,
    db: DbDep,
    queue: QueueDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
) -> ChatAccepted:
    """Record a message and queue its answer; poll /api/status/{task_id} for progress.

    With a personal credential the message is the person's own, whatever `user_id` says; delivery
    notes (`client_meta`) are the bot's and the operator's to set.
    """
    caller.check_client_meta(body.client_meta)
    body = body.model_copy(update={"user_id": caller.acting_for(body.user_id)})
    if len(body.text) > gateway.max_text_chars:
        raise TextTooLong(gateway.max_text_chars, len(body.text))
    task, replayed = tasks.submit_chat(
        db, queue, body, queue_settings.max_queue_length, tasks.Limits.of(gateway)
    )
    return submitted(db, task, replayed, response)


@router.get(
    "/status/{task_id}",
    response_model=TaskOut,
    responses={304: {"description": "Not modified: still what If-None-Match names, after waiting."}},
)
async def get_status(
    task: OwnedTaskDep,
    caller: CallerDep,
    request: Request,
    db: DbDep,
    changes: ChangesDep,
    streams: StreamsDep,
    wait: Annotated[
        float, Query(ge=0, le=60, description="With If-None-Match: seconds to wait for a change.")
    ] = 0,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """Where a task stands: queue position, the answer so far, the final answer or the error.

    Each answer carries an ETag. Sent back as If-None-Match with `wait`, it makes this a long poll:
    the reply comes as soon as the task changes (304 if it has not within `wait` seconds).
    A plain poll of the same task sooner than MIN_POLL_INTERVAL_SECONDS after the last one is held
    until the task changes or the interval has passed.
    """
    if wait and if_none_match:
        with streams.hold(task.owner):
            document, tag, changed = await stream.status_once_changed(
                db, changes, task.id, if_none_match, wait
            )
    else:
        delay = guard_of(request).pacer.poll_delay(caller.client, task.id)
        if delay > 0:
            with changes.watch(task.id) as changed_now:
                await changes.wait(changed_now, delay)
        document, tag, changed = await stream.status_once_changed(db, changes, task.id, if_none_match, 0)
    if not changed:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return Response(document, media_type="application/json", headers={"ETag": tag})


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task: OwnedTaskDep, db: DbDep, queue: QueueDep) -> TaskOut:
    """Stop a task: a queued one at once, a started one within a token or two."""
    return tasks.cancel(db, queue, task.id)


@router.post("/tasks/{task_id}/regenerate", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
def regenerate_task(
    task: OwnedTaskDep,
    db: DbDep,
    queue: QueueDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
    body: RegenerateRequest | None = None,
) -> ChatAccepted:
    """Answer the same message again as a new task; the old answer leaves the history.

    With `text`, the message is answered as corrected (e.g. a voice note's transcript put right)."""
    text = body.text if body is not None else None
    if text is not None and len(text) > gateway.max_text_chars:
        raise TextTooLong(gateway.max_text_chars, len(text))
    limits = tasks.Limits.of(gateway)
    return accepted(
        db, tasks.regenerate(db, queue, task.id, task.owner, queue_settings.max_queue_length, limits, text)
    )


@router.get(
    "/tasks/{task_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def task_events(
    task: OwnedTaskDep,
    request: Request,
    db: DbDep,
    changes: ChangesDep,
    streams: StreamsDep,
) -> StreamingResponse:
    """The task as Server-Sent Events: `status` while waiting, `delta` pieces of text, then `done`.

    A stream lives at most STREAM_MAX_SECONDS; a client that wants more reconnects.
    """
    streams.check(task.owner)  # refused now (429), before the response starts
    ending = streams.ending(request.is_disconnected)

    async def events() -> AsyncIterator[str]:
        # Counted while the body is sent: a response never started (the client left) holds nothing.
        with streams.hold(task.owner):
            async for event in stream.task_events(db, changes, task.id, ending):
                yield event

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.patch("/tasks/{task_id}", response_model=TaskOut)
def update_task(
    task: OwnedTaskDep, body: TaskUpdate, caller: CallerDep, db: DbDep, queue: QueueDep
) -> TaskOut:
    """Add client notes to a task, or record that its answer reached the user."""
    caller.check_client_meta(body.client_meta)
    updated = tasks.update(db, task.id, body)
    announce_change(queue, task.id)  # what gateways hold of this task's status is out of date now
    return updated


@router.get("/tasks/undelivered", response_model=list[TaskOut])
def list_undelivered(
    caller: ServiceDep,
    db: DbDep,
    user_prefix: Annotated[str, Query(max_length=64, description="Only users whose id starts so.")] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TaskOut]:
    """Tasks carrying client notes whose answer is not marked delivered: what a restarted client owes."""
    if caller.role == CallerRole.BOT and not is_telegram(user_prefix):
        raise HTTPException(status_code=403, detail="user_prefix: the bot sees tg: users only")
    return tasks.undelivered(db, user_prefix, limit)
