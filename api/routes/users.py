"""Per-user state: conversations, persona, latest task, statistics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import DbDep
from api.services import NotFound, users
from shared.personas import DEFAULT
from shared.retention import forget_user as forget
from shared.schemas import (
    ConversationOut,
    Exchange,
    NewConversationRequest,
    PersonaChoice,
    TaskOut,
    UserSettingsOut,
    UserStats,
)

router = APIRouter(prefix="/api", tags=["users"])
ChatIdQuery = Annotated[str | None, Query(max_length=128)]


@router.post("/conversations", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
def start_conversation(body: NewConversationRequest, db: DbDep) -> ConversationOut:
    """Start a new conversation for the user: later messages do not see the earlier ones."""
    return ConversationOut(conversation_id=users.new_conversation(db, body.user_id, body.chat_id))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def forget_user(user_id: str, db: DbDep) -> Response:
    """Delete everything kept about the user: conversations, messages, answers, settings."""
    if not forget(db, user_id):
        raise NotFound("No such user.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}/settings", response_model=UserSettingsOut)
def get_settings(user_id: str, db: DbDep) -> UserSettingsOut:
    return UserSettingsOut(persona=users.get_persona(db, user_id) or DEFAULT)


@router.put("/users/{user_id}/persona", response_model=UserSettingsOut)
def put_persona(user_id: str, body: PersonaChoice, db: DbDep) -> UserSettingsOut:
    """Pick the persona (system prompt) for the user's next answers."""
    users.set_persona(db, user_id, body.persona)
    return UserSettingsOut(persona=body.persona)


@router.get("/users/{user_id}/latest-task", response_model=TaskOut)
def latest_task(user_id: str, db: DbDep, chat_id: ChatIdQuery = None) -> TaskOut:
    """The newest task of the user's current conversation (in `chat_id`)."""
    return users.latest_task(db, user_id, chat_id)


@router.get("/users/{user_id}/history", response_model=list[Exchange])
def history(
    user_id: str, db: DbDep, chat_id: ChatIdQuery = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[Exchange]:
    """The user's current conversation, oldest first: what a chat page shows after a reload."""
    return users.history(db, user_id, chat_id, limit)


@router.get("/users/{user_id}/stats", response_model=UserStats)
def user_stats(user_id: str, db: DbDep) -> UserStats:
    """How much the user has used the assistant."""
    return users.stats(db, user_id)
