"""Chat messages and their tasks: send, follow, cancel, regenerate, mark delivered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import DbDep, GatewaySettingsDep, QueueDep, QueueSettingsDep
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


@router.get("/status/{task_id}", response_model=TaskOut)
def get_status(task_id: str, db: DbDep) -> TaskOut:
    """Where a task stands: queue position, the answer so far, the final answer or the error."""
    return tasks.get_status(db, task_id)


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
def task_events(task_id: str, request: Request, db: DbDep) -> StreamingResponse:
    """The task as Server-Sent Events: `status` while waiting, `delta` pieces of text, then `done`."""
    tasks.get_status(db, task_id)  # 404 before the stream starts
    return StreamingResponse(
        stream.task_events(db, task_id, request.is_disconnected),
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
