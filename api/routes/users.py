"""Per-user state: conversations, persona, latest task, statistics, and personal links.

A path naming a user the caller may not act for is refused with 403 (a person may name only
themselves, the bot only Telegram users). Ids may contain `/` (`{user_id:path}`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, ServiceDep
from api.deps import DbDep, GatewaySettingsDep
from api.services import NotFound, credentials, users
from shared.models import CredentialKind
from shared.personas import DEFAULT
from shared.retention import forget_user as forget
from shared.schemas import (
    ConversationOut,
    Exchange,
    InviteOut,
    NewConversationRequest,
    PersonaChoice,
    TaskOut,
    UserSettingsOut,
    UserStats,
)

router = APIRouter(prefix="/api", tags=["users"])
ChatIdQuery = Annotated[str | None, Query(max_length=128)]


@router.post("/conversations", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
def start_conversation(body: NewConversationRequest, caller: CallerDep, db: DbDep) -> ConversationOut:
    """Start a new conversation for the user: later messages do not see the earlier ones."""
    user_id = caller.acting_for(body.user_id)
    return ConversationOut(conversation_id=users.new_conversation(db, user_id, body.chat_id))


@router.get("/users/{user_id:path}/settings", response_model=UserSettingsOut)
def get_settings(user_id: str, caller: CallerDep, db: DbDep) -> UserSettingsOut:
    caller.check_user(user_id)
    return UserSettingsOut(persona=users.get_persona(db, user_id) or DEFAULT)


@router.put("/users/{user_id:path}/persona", response_model=UserSettingsOut)
def put_persona(user_id: str, body: PersonaChoice, caller: CallerDep, db: DbDep) -> UserSettingsOut:
    """Pick the persona (system prompt) for the user's next answers."""
    caller.check_user(user_id)
    users.set_persona(db, user_id, body.persona)
    return UserSettingsOut(persona=body.persona)


@router.get("/users/{user_id:path}/latest-task", response_model=TaskOut)
def latest_task(user_id: str, caller: CallerDep, db: DbDep, chat_id: ChatIdQuery = None) -> TaskOut:
    """The newest task of the user's current conversation (in `chat_id`)."""
    caller.check_user(user_id)
    return users.latest_task(db, user_id, chat_id)


@router.get("/users/{user_id:path}/history", response_model=list[Exchange])
def history(
    user_id: str,
    caller: CallerDep,
    db: DbDep,
    chat_id: ChatIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Exchange]:
    """The user's current conversation, oldest first: what a chat page shows after a reload."""
    caller.check_user(user_id)
    return users.history(db, user_id, chat_id, limit)


@router.get("/users/{user_id:path}/stats", response_model=UserStats)
def user_stats(user_id: str, caller: CallerDep, db: DbDep) -> UserStats:
    """How much the user has used the assistant."""
    caller.check_user(user_id)
    return users.stats(db, user_id)


@router.post("/users/{user_id:path}/invites", status_code=status.HTTP_201_CREATED, response_model=InviteOut)
async def invite(user_id: str, caller: ServiceDep, db: DbDep, gateway: GatewaySettingsDep) -> InviteOut:
    """A one-time personal link to the web page for this user (the bot's /web, `make invite`)."""
    caller.check_user(user_id)
    token, expires = await run_in_threadpool(
        credentials.issue, db, user_id, CredentialKind.INVITE, timedelta(hours=gateway.invite_hours)
    )
    return InviteOut(link=credentials.link(gateway.public_url, token), invite=token, expires_at=expires)


@router.delete("/users/{user_id:path}", status_code=status.HTTP_204_NO_CONTENT)
def forget_user(user_id: str, caller: CallerDep, db: DbDep) -> Response:
    """Delete everything kept about the user: conversations, messages, answers, settings, sign-ins."""
    caller.check_user(user_id)
    if not forget(db, user_id):
        raise NotFound("No such user.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
