"""Chat messages, task status, cancel and new conversations."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from api import services
from api.deps import DbDep, GatewaySettingsDep, QueueDep, QueueSettingsDep
from shared.schemas import (
    ChatAccepted,
    ChatRequest,
    ConversationOut,
    NewConversationRequest,
    TaskOut,
)

router = APIRouter(prefix="/api", tags=["chat"])


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
    task, replayed = services.submit_chat(db, queue, body, queue_settings.max_queue_length)
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    with db.reading() as session:
        position = services.queue_position(session, task)
    return ChatAccepted(
        task_id=task.id, status=task.status, position=position, conversation_id=task.conversation_id
    )


@router.get("/status/{task_id}", response_model=TaskOut)
def get_status(task_id: str, db: DbDep) -> TaskOut:
    """Where a task stands: queue position, the answer so far, the final answer or the error."""
    return services.get_status(db, task_id)


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: str, db: DbDep, queue: QueueDep) -> TaskOut:
    """Stop a task: a queued one at once, a started one within a token or two."""
    return services.cancel(db, queue, task_id)


@router.post("/conversations", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
def start_conversation(body: NewConversationRequest, db: DbDep) -> ConversationOut:
    """Start a new conversation for the user: later messages do not see the earlier ones."""
    return ConversationOut(conversation_id=services.new_conversation(db, body.user_id, body.chat_id))
