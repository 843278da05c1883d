"""Who is asking: the operator, the Telegram bot, or one person; decided before a body is read.

`Guard` wraps the whole application. For every request that needs a caller it reads the
credential from the headers (or the web page's cookie), refuses with 401 without reading the body
when there is none, refuses bodies over the size limit with 413, and leaves the `Caller` in the
request's state for the routes (`CallerDep`, `OperatorDep`).
"""

from __future__ import annotations

import enum
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Path, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import OpenAIError, error_response
from api.services import RateLimited, credentials
from api.services.pacing import Pacer
from shared.config import GatewaySettings
from shared.db import Database
from shared.identity import is_telegram
from shared.models import CredentialKind

SESSION_COOKIE = "ai_assistant_session"
# Paths anyone may open: the page and its files, health, the schema, and trading an invite for a session.
_PUBLIC_PATHS = frozenset({"/", "/health", "/openapi.json", "/favicon.ico"})
_PUBLIC_PREFIXES = ("/static/",)
_PUBLIC_ROUTES = frozenset({("POST", "/api/session")})
# Public, and each reads the database: paced by address.
_PACED_PUBLIC_PATHS = frozenset({"/health"})
# Methods that only read; every other one is a write, counted against the writer's budget.
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A revoked or expired personal credential, or a blocked person's, stops working within this many
# seconds (at once for a sign-out or a block through this process, which forgets it here).
CACHE_SECONDS = 30.0
# The bot reads for all its people at once: its budget is this many clients' worth.
BOT_READ_SCALE = 10.0
_CACHE_SIZE = 10_000


class CallerRole(enum.StrEnum):
    OPERATOR = "operator"
    BOT = "bot"
    PERSON = "person"


@dataclass(frozen=True)
class Caller:
    role: CallerRole
    # A person's own user id (from their credential); None for the operator and the bot.
    user_id: str | None = None
    credential_id: int | None = None
    from_cookie: bool = False

    @property
    def client(self) -> str:
        """Whose budget a request counts against: a person, the bot, or the operator."""
        return self.user_id or self.role

    def may_act_for(self, user_id: str) -> bool:
        if self.role == CallerRole.OPERATOR:
            return True
        if self.role == CallerRole.BOT and self.user_id is None:
            return is_telegram(user_id)
        # A person; or the bot narrowed to the one person who pressed a button (X-Acting-For).
        return user_id == self.user_id

    def acting_for(self, asked: str | None) -> str:
        """The user a request acts for: a person is always themselves, whatever a body says."""
        if self.role == CallerRole.PERSON or (self.user_id is not None and asked is None):
            assert self.user_id is not None
            return self.user_id
        if asked is None:
            raise HTTPException(422, "user_id: required with this key")
        self.check_user(asked)
        return asked

    def check_client_meta(self, client_meta: object) -> None:
        """Refuse delivery notes from a person: they are the bot's and the operator's to set."""
        if self.role == CallerRole.PERSON and client_meta is not None:
            raise HTTPException(status_code=403, detail="client_meta: only the bot or the operator sets it")

    def check_user(self, user_id: str) -> None:
        """Refuse a path or query naming a user this caller may not act for."""
        if not self.may_act_for(user_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "This credential may not act for that user.")


class _Cache:
    """Recently resolved personal credentials, so a poll does not cost a database read."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[Caller | None, float]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Caller | None]:
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key: str, caller: Caller | None) -> None:
        self._entries[key] = (caller, time.monotonic() + CACHE_SECONDS)
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_SIZE:
            self._entries.popitem(last=False)

    def forget(self, credential_id: int) -> None:
        for key in [k for k, (c, _) in self._entries.items() if c and c.credential_id == credential_id]:
            del self._entries[key]

    def forget_user(self, user_id: str) -> None:
        """Every credential of `user_id` is looked up again (they were blocked)."""
        for key in [k for k, (c, _) in self._entries.items() if c and c.user_id == user_id]:
            del self._entries[key]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


# The one route that long-polls; its waits are capped as streams are (MAX_STREAMS_PER_USER).
_LONG_POLL_PREFIX = "/api/status/"


def _long_poll(scope: Scope) -> bool:
    """A status request that waits for a change (If-None-Match and `wait`): free until one comes.
    Judged by the route, not by the headers alone: on any other GET they are only decoration."""
    if not scope["path"].startswith(_LONG_POLL_PREFIX) or _header(scope, b"if-none-match") is None:
        return False
    wait = parse_qs(scope["query_string"].decode("latin-1")).get("wait", ["0"])[-1]
    try:
        return float(wait) > 0
    except ValueError:
        return False


def _address(scope: Scope) -> str:
    """Whose budget a request with no known credential counts against: its network address."""
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def _equal(given: str, expected: str | None) -> bool:
    return expected is not None and secrets.compare_digest(given.encode(), expected.encode())


# Where audio files are uploaded: their bodies may be as large as VOICE_MAX_BYTES.
AUDIO_PATHS = frozenset({"/api/chat/voice", "/v1/audio/transcriptions"})
# Where documents are uploaded: their bodies may be as large as DOCUMENT_MAX_BYTES.
DOCUMENTS_PATH = "/api/documents"


class Guard:
    """ASGI middleware: authenticate, then limit the body, before the application reads anything."""

    def __init__(
        self, app: ASGIApp, settings: GatewaySettings, audio_max_bytes: int = 0, document_max_bytes: int = 0
    ) -> None:
        """`audio_max_bytes`: the body allowed where audio is uploaded (VOICE_MAX_BYTES); and
        `document_max_bytes` where documents are (DOCUMENT_MAX_BYTES)."""
        self.app = app
        self.settings = settings
        # Where files are uploaded, the body may be as large as the file; the form around it (names,
        # a language, a key) is small, and 64 KB is room enough for it.
        self._upload_limits = {path: audio_max_bytes + 64 * 1024 for path in AUDIO_PATHS}
        self._upload_limits[DOCUMENTS_PATH] = document_max_bytes + 64 * 1024
        self.cache = _Cache()
        self._operator = settings.api_key.get_secret_value() if settings.api_key else None
        self._bot = settings.bot_api_key.get_secret_value() if settings.bot_api_key else None
        self.pacer = Pacer(
            settings.min_poll_interval_seconds,
            settings.reads_per_second,
            settings.reads_per_second_total,
            # Never below the messages a person may send: RATE_LIMIT_PER_MINUTE stays the limit on those.
            max(settings.writes_per_minute, settings.rate_limit_per_minute),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        scope.setdefault("state", {})["guard"] = self
        public = (
            path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES) or (method, path) in _PUBLIC_ROUTES
        )
        try:
            if path in _PACED_PUBLIC_PATHS:
                await self.pacer.read(_address(scope))
            if (method, path) in _PUBLIC_ROUTES:  # signing in: a write, by whoever the address is
                self.pacer.write(_address(scope))
            caller = None if public else await self._authenticate(scope)
            if caller is not None and caller.role == CallerRole.PERSON and method not in _READ_METHODS:
                # The bot and the operator are not counted here: the bot paces each Telegram user
                # itself (BOT_RATE_LIMIT_*), and the operator's key may do anything anyway.
                self.pacer.write(caller.client)
        except RateLimited as exc:
            await self._refuse_paced(scope, receive, send, exc)
            return
        if not public:
            if caller is None:
                await self._refuse(scope, receive, send, 401, "A valid key or sign-in is required.")
                return
            scope["state"]["caller"] = caller
            if method == "GET" and not _long_poll(scope):
                try:
                    scale = BOT_READ_SCALE if caller.client == CallerRole.BOT else 1.0
                    await self.pacer.read(caller.client, scale)
                except RateLimited as exc:
                    await self._refuse_paced(scope, receive, send, exc)
                    return
        limited = await self._limit_body(scope, receive, send)
        if limited is not None:
            await self.app(scope, limited, send)

    async def _authenticate(self, scope: Scope) -> Caller | None:
        given = _header(scope, b"x-api-key")
        bearer = _header(scope, b"authorization")
        if not given and bearer and bearer[:7].lower() == "bearer ":
            given = bearer[7:].strip()
        from_cookie = False
        if not given:
            given = _cookie(scope, SESSION_COOKIE)
            from_cookie = True
        if not given:
            return None
        if _equal(given, self._operator):
            return Caller(CallerRole.OPERATOR)
        if _equal(given, self._bot):
            # The bot may narrow itself to one Telegram user per request: then it can touch only
            # that person's tasks (a button pressed in a group under someone else's answer).
            narrowed = _header(scope, b"x-acting-for")
            if narrowed is not None and not is_telegram(narrowed):
                return None
            return Caller(CallerRole.BOT, narrowed)
        # A cookie may carry less than a header: what was found through one says nothing of the other.
        key = ("cookie:" if from_cookie else "header:") + credentials.digest(given)
        known, caller = self.cache.get(key)
        if known:
            return caller
        db: Database | None = scope["state"].get("db")
        if db is None:
            return None
        # A credential not seen lately costs a database read: an address sending ones nobody holds
        # (guessing, or a client with a stale token) is paced as one reader, before the read.
        await self.pacer.read(_address(scope))
        # Cookies carry sessions only; headers carry sessions (the page's own requests) or API tokens.
        kinds = frozenset(
            {CredentialKind.SESSION} if from_cookie else {CredentialKind.SESSION, CredentialKind.API}
        )
        holder = await run_in_threadpool(credentials.resolve, db, given, kinds)
        caller = (
            Caller(CallerRole.PERSON, holder.user_id, holder.credential_id, from_cookie) if holder else None
        )
        self.cache.put(key, caller)
        return caller

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """`receive` as is when the declared length fits; a replay of a buffered body otherwise."""
        limit = self.settings.max_body_bytes
        if scope["method"] == "POST" and scope["path"] in self._upload_limits:
            limit = max(limit, self._upload_limits[scope["path"]])
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await self._refuse(scope, receive, send, 413, f"The body is larger than {limit} bytes.")
                return None
            return receive
        if _header(scope, b"transfer-encoding") is None:
            return receive
        # A chunked body: read it up to the limit, then hand the application a copy.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await self._refuse(scope, receive, send, 413, f"The body is larger than {limit} bytes.")
                return None
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _refuse_paced(self, scope: Scope, receive: Receive, send: Send, exc: RateLimited) -> None:
        message = f"Too many requests; please wait {exc.retry_after} s."
        await self._refuse(scope, receive, send, 429, message, retry_after=exc.retry_after)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, code: int, message: str, retry_after: int = 0
    ) -> None:
        # The body was not read: the connection cannot carry another request.
        headers = {"Connection": "close", **({"WWW-Authenticate": "Bearer"} if code == 401 else {})}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        kind = {401: "invalid_api_key", 413: "body_too_large", 429: "rate_limit_exceeded"}[code]
        response = error_response(Request(scope), code, message, headers=headers, code=kind)
        await response(scope, receive, send)


async def get_caller(request: Request) -> Caller:
    caller: Caller | None = request.state.caller if hasattr(request.state, "caller") else None
    if caller is None:  # a public route that asks for a caller is a bug of ours, not the client's
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "A valid key or sign-in is required.")
    return caller


async def require_operator(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if caller.role != CallerRole.OPERATOR:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only the operator's key may do this.")
    return caller


async def require_service(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """The operator or the bot: the two that act for other people."""
    if caller.role == CallerRole.PERSON:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "A personal credential may not do this.")
    return caller


async def require_openai_client(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """The operator or a person: the bot's key is for its own routes, not for /v1's work."""
    if caller.role == CallerRole.BOT:
        raise OpenAIError(403, "the bot's key may not use /v1", "permission_error")
    return caller


def guard_of(request: Request) -> Guard:
    guard: Guard = request.state.guard
    return guard


CallerDep = Annotated[Caller, Depends(get_caller)]
OperatorDep = Annotated[Caller, Depends(require_operator)]
ServiceDep = Annotated[Caller, Depends(require_service)]
OpenAIClientDep = Annotated[Caller, Depends(require_openai_client)]


# The column's size: a longer id in a path is refused at the edge (PostgreSQL would refuse it with a 500).
PathUserId = Annotated[str, Path(max_length=128)]


def own_user(user_id: PathUserId, caller: CallerDep) -> str:
    """The `{user_id}` of the path, once the caller may act for that user (403 otherwise)."""
    caller.check_user(user_id)
    return user_id


def served_user(user_id: PathUserId, caller: ServiceDep) -> str:
    """As `own_user`, for routes only the operator and the bot may call."""
    caller.check_user(user_id)
    return user_id


OwnUserDep = Annotated[str, Depends(own_user)]
ServedUserDep = Annotated[str, Depends(served_user)]
