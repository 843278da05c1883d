"""Chat messages and their tasks: send, follow, cancel, regenerate, mark delivered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import ChangesDep, DbDep, GatewaySettingsDep, QueueDep, QueueSettingsDep
from api.services import stream, tasks
from api.services.status import queue_position
from shared.db import Database
from shared.models import Task
from shared.schemas import ChatAccepted, ChatRequest, TaskOut, TaskUpdate

router = APIRouter(prefix="/api", tags=["chat"])


def _accepted(db: Database, task: Task) -> ChatAccepted:
    with db.reading() as session:
        position = queue_position(session, task)
    return ChatAccepted(
        task_id=task.id, status=task.status, position=position, conversation_id=task.conversation_id
    )


@router.post("/chat", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
def post_chat(
    body: ChatRequest,
    response: Response,
    db: DbDep,
    queue: QueueDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
) -> ChatAccepted:
    """Record a message and queue its answer; poll /api/status/{task_id} for progress."""
    if len(body.text) > gateway.max_text_chars:
        raise HTTPException(
            status_code=422,
            detail=f"text: must be at most {gateway.max_text_chars} characters (got {len(body.text)})",
        )
    task, replayed = tasks.submit_chat(
        db, queue, body, queue_settings.max_queue_length, gateway.rate_limit_per_minute
    )
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return _accepted(db, task)


@router.get(
    "/status/{task_id}",
    response_model=TaskOut,
    responses={304: {"description": "Not modified: still what If-None-Match names, after waiting."}},
)
async def get_status(
    task_id: str,
    db: DbDep,
    changes: ChangesDep,
    wait: Annotated[
        float, Query(ge=0, le=60, description="With If-None-Match: seconds to wait for a change.")
    ] = 0,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """Where a task stands: queue position, the answer so far, the final answer or the error.

    Each answer carries an ETag. Sent back as If-None-Match with `wait`, it makes this a long poll:
    the reply comes as soon as the task changes (304 if it has not within `wait` seconds).
    """
    document, tag, changed = await stream.status_once_changed(db, changes, task_id, if_none_match, wait)
    if not changed:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return Response(document, media_type="application/json", headers={"ETag": tag})


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: str, db: DbDep, queue: QueueDep) -> TaskOut:
    """Stop a task: a queued one at once, a started one within a token or two."""
    return tasks.cancel(db, queue, task_id)


@router.post("/tasks/{task_id}/regenerate", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
def regenerate_task(
    task_id: str, db: DbDep, queue: QueueDep, queue_settings: QueueSettingsDep
) -> ChatAccepted:
    """Answer the same message again as a new task; the old answer leaves the history."""
    return _accepted(db, tasks.regenerate(db, queue, task_id, queue_settings.max_queue_length))


@router.get(
    "/tasks/{task_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
def task_events(task_id: str, request: Request, db: DbDep, changes: ChangesDep) -> StreamingResponse:
    """The task as Server-Sent Events: `status` while waiting, `delta` pieces of text, then `done`."""
    tasks.get_status(db, task_id)  # 404 before the stream starts
    return StreamingResponse(
        stream.task_events(db, changes, task_id, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.patch("/tasks/{task_id}", response_model=TaskOut)
def update_task(task_id: str, body: TaskUpdate, db: DbDep) -> TaskOut:
    """Add client notes to a task, or record that its answer reached the user."""
    return tasks.update(db, task_id, body)


@router.get("/tasks/undelivered", response_model=list[TaskOut])
def list_undelivered(
    db: DbDep,
    user_prefix: Annotated[str, Query(max_length=64, description="Only users whose id starts so.")] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TaskOut]:
    """Tasks carrying client notes whose answer is not marked delivered: what a restarted client owes."""
    return tasks.undelivered(db, user_prefix, limit)
