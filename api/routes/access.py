"""Telegram access: the bot files requests from unknown people; admins allow or block them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import CallerRole, ServedUserDep, ServiceDep, guard_of
from api.deps import DbDep
from api.services import access
from shared.identity import Face
from shared.models import AccessStatus
from shared.schemas import AccessDecision, AccessOut, AccessRequest

router = APIRouter(prefix="/api", tags=["access"])


@router.post("/users/{user_id:path}/access-request", response_model=AccessOut)
def request_access(user_id: ServedUserDep, body: AccessRequest, db: DbDep) -> AccessOut:
    """Ask for access (once): `created` is true only for the call that filed the request."""
    return access.request_access(db, user_id, body.display_name)


@router.get("/users/{user_id:path}/access", response_model=AccessOut)
def get_access(user_id: ServedUserDep, db: DbDep) -> AccessOut:
    return access.current(db, user_id)


@router.put("/users/{user_id:path}/access", response_model=AccessOut)
async def put_access(user_id: ServedUserDep, body: AccessDecision, db: DbDep, request: Request) -> AccessOut:
    """Allow or block a person (or put them back to waiting), from now on, with no restart: a block
    also shuts their web sessions and API tokens out."""
    decided = await run_in_threadpool(access.decide, db, user_id, body.access)
    if body.access == AccessStatus.BLOCKED:
        # Here, in the event loop, where the guard's cache is read.
        guard_of(request).cache.forget_user(user_id)
    return decided


@router.get("/access", response_model=list[AccessOut])
def list_access(
    caller: ServiceDep,
    db: DbDep,
    status: AccessStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AccessOut]:
    """People who asked, and the decisions taken, newest first."""
    prefix = Face.TELEGRAM.prefix if caller.role == CallerRole.BOT else ""
    return access.listing(db, status, prefix, limit)
