"""The web page's sign-in: a one-time personal link becomes a session kept in an HttpOnly cookie.

The page's script never sees the session (HttpOnly), other sites' pages cannot send it
(SameSite=Strict), and signing out deletes it on the server, not only in the browser.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import SESSION_COOKIE, CallerDep, CallerRole, guard_of
from api.deps import DbDep, GatewaySettingsDep
from api.services import credentials
from shared.identity import telegram_id
from shared.schemas import Me, SessionRequest

router = APIRouter(prefix="/api", tags=["session"])


def _secure(request: Request, public_url: str | None) -> bool:
    # Behind a TLS proxy the gateway itself sees http; PUBLIC_URL says what people really use.
    return request.url.scheme == "https" or bool(public_url and public_url.startswith("https://"))


@router.post("/session", response_model=Me)
async def sign_in(
    body: SessionRequest, request: Request, response: Response, db: DbDep, gateway: GatewaySettingsDep
) -> Me:
    """Trade a personal link's one-time invite for a session cookie (the link then stops working)."""
    lifetime = timedelta(days=gateway.session_days)
    try:
        token, _ = await run_in_threadpool(credentials.redeem_invite, db, body.invite, lifetime)
    except credentials.InvalidInvite:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "This link was already used or has expired; ask for a new one."
        ) from None
    holder = await run_in_threadpool(credentials.resolve, db, token, credentials.SESSION_ONLY)
    assert holder is not None
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request, gateway.public_url),
    )
    return _me(CallerRole.PERSON, holder.user_id)


@router.get("/me", response_model=Me)
def me(caller: CallerDep) -> Me:
    """Who this credential is; the web page asks on load."""
    return _me(caller.role, caller.user_id)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(caller: CallerDep, request: Request, db: DbDep) -> Response:
    """End this web session everywhere it was copied to: the server forgets it."""
    if caller.credential_id is not None and caller.user_id is not None and caller.from_cookie:
        await run_in_threadpool(credentials.revoke_held, db, caller.user_id, caller.credential_id)
        guard_of(request).cache.forget(caller.credential_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _me(role: CallerRole, user_id: str | None) -> Me:
    # A Telegram user's private chat has their own id: the page continues that conversation.
    chat = telegram_id(user_id) if user_id else None
    return Me(role=role, user_id=user_id, chat_id=chat)
