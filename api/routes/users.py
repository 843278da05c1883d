"""Per-user state: persona, instructions, quotas, latest task, statistics, and personal links.

A path naming a user the caller may not act for is refused with 403 (a person may name only
themselves, the bot only Telegram users). Ids may contain `/` (`{user_id:path}`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import OwnUserDep, ServedUserDep
from api.deps import ChatIdQuery, DbDep, GatewaySettingsDep
from api.services import NotFound, credentials, quotas, users
from api.services.tasks import Limits
from shared.account_schemas import InstructionsIn, Quota, QuotaSetting
from shared.models import CredentialKind
from shared.retention import forget_user as forget
from shared.schemas import (
    Exchange,
    InviteOut,
    PersonaChoice,
    SpeechLanguage,
    TaskOut,
    UserSettingsOut,
    UserStats,
)

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/users/{user_id:path}/settings", response_model=UserSettingsOut)
def get_settings(user_id: OwnUserDep, db: DbDep) -> UserSettingsOut:
    return users.settings(db, user_id)


@router.put("/users/{user_id:path}/persona", response_model=UserSettingsOut)
def put_persona(user_id: OwnUserDep, body: PersonaChoice, db: DbDep) -> UserSettingsOut:
    """Pick the persona (system prompt) for the user's next answers."""
    users.set_persona(db, user_id, body.persona)
    return users.settings(db, user_id)


@router.put("/users/{user_id:path}/instructions", response_model=UserSettingsOut)
def put_instructions(user_id: OwnUserDep, body: InstructionsIn, db: DbDep) -> UserSettingsOut:
    """The user's own standing instructions, added after the operator's (which they cannot replace)."""
    users.set_instructions(db, user_id, body.instructions)
    return users.settings(db, user_id)


@router.put("/users/{user_id:path}/speech-language", response_model=UserSettingsOut)
def put_speech_language(user_id: OwnUserDep, body: SpeechLanguage, db: DbDep) -> UserSettingsOut:
    """The language the user's voice notes are in (null: detected in each note)."""
    users.set_speech_language(db, user_id, body.language)
    return users.settings(db, user_id)


@router.get("/users/{user_id:path}/quota", response_model=Quota)
def get_quota(user_id: OwnUserDep, db: DbDep, gateway: GatewaySettingsDep) -> Quota:
    """Tokens used today and this month, the quotas, and when each starts anew."""
    return quotas.standing(db, user_id, Limits.of(gateway).quota)


@router.put("/users/{user_id:path}/quota", response_model=Quota)
def put_quota(user_id: ServedUserDep, body: QuotaSetting, db: DbDep, gateway: GatewaySettingsDep) -> Quota:
    """An admin's quotas for this user (null: the operator's defaults); the bot checks its admins."""
    quotas.override(db, user_id, body)
    return quotas.standing(db, user_id, Limits.of(gateway).quota)


@router.get("/users/{user_id:path}/latest-task", response_model=TaskOut)
def latest_task(user_id: OwnUserDep, db: DbDep, chat_id: ChatIdQuery = None) -> TaskOut:
    """The newest task of the user's current conversation (in `chat_id`)."""
    return users.latest_task(db, user_id, chat_id)


@router.get("/users/{user_id:path}/history", response_model=list[Exchange])
def history(
    user_id: OwnUserDep,
    db: DbDep,
    chat_id: ChatIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Exchange]:
    """The user's current conversation, oldest first: what a chat page shows after a reload."""
    return users.history(db, user_id, chat_id, limit)


@router.get("/users/{user_id:path}/stats", response_model=UserStats)
def user_stats(user_id: OwnUserDep, db: DbDep) -> UserStats:
    """How much the user has used the assistant."""
    return users.stats(db, user_id)


@router.post("/users/{user_id:path}/invites", status_code=status.HTTP_201_CREATED, response_model=InviteOut)
async def invite(user_id: ServedUserDep, db: DbDep, gateway: GatewaySettingsDep) -> InviteOut:
    """A one-time personal link to the web page for this user (the bot's /web, `make invite`)."""
    token, expires = await run_in_threadpool(
        credentials.issue, db, user_id, CredentialKind.INVITE, timedelta(hours=gateway.invite_hours)
    )
    return InviteOut(link=credentials.link(gateway.public_url, token), invite=token, expires_at=expires)


@router.delete("/users/{user_id:path}", status_code=status.HTTP_204_NO_CONTENT)
def forget_user(user_id: OwnUserDep, db: DbDep) -> Response:
    """Delete everything kept about the user: conversations, messages, answers, settings, sign-ins."""
    if not forget(db, user_id):
        raise NotFound("No such user.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
