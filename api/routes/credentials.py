"""A person's web sessions and API tokens: listed and revoked by them, the operator, or (for a
Telegram user) the bot; never shown with their secrets, which only their holders ever had."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, OwnUserDep, guard_of
from api.deps import DbDep
from api.services import NotFound, credentials
from shared.schemas import CredentialOut, RevokedOut

router = APIRouter(prefix="/api", tags=["credentials"])


@router.get("/users/{user_id:path}/credentials", response_model=list[CredentialOut])
async def list_credentials(user_id: OwnUserDep, caller: CallerDep, db: DbDep) -> list[CredentialOut]:
    """The person's live web sessions and API tokens, the newest first."""
    held = await run_in_threadpool(credentials.held_by, db, user_id)
    return [
        CredentialOut(
            id=c.id,
            kind=c.kind,
            label=c.label,
            created_at=c.created_at,
            expires_at=c.expires_at,
            current=c.id == caller.credential_id,
        )
        for c in held
    ]


@router.delete("/users/{user_id:path}/credentials/{credential_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_credential(
    user_id: OwnUserDep, credential_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: DbDep, request: Request
) -> Response:
    """Revoke one of the person's sessions or tokens: it opens nothing from now on."""
    if not await run_in_threadpool(credentials.revoke_held, db, user_id, credential_id):
        raise NotFound("No such credential of this person.")
    # Here, in the event loop, where the guard's cache is read.
    guard_of(request).cache.forget(credential_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/users/{user_id:path}/credentials", response_model=RevokedOut)
async def revoke_all_credentials(user_id: OwnUserDep, db: DbDep, request: Request) -> RevokedOut:
    """Sign the person out everywhere: every web session and API token of theirs stops at once."""
    revoked = await run_in_threadpool(credentials.revoke_held, db, user_id)
    guard_of(request).cache.forget_user(user_id)
    return RevokedOut(revoked=revoked)
