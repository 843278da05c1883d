"""Errors mapped at the edge to JSON with a readable message; no traceback leaves the process.

Our own API answers `{"detail": "..."}`; the OpenAI-compatible routes under /v1 answer in OpenAI's
shape, `{"error": {"message", "type", "param", "code"}}`, so its client libraries understand them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.services import (
    Conflict,
    NotFound,
    QueueFull,
    QueueUnavailable,
    QuotaExceeded,
    RateLimited,
    TextTooLong,
    TooManyActive,
    TooManyStreams,
)
from api.services.documents import DocumentRefused
from api.services.voice_notes import VoiceRefused
from shared.schemas import ErrorCode

log = logging.getLogger(__name__)

QUEUE_DOWN = "The message queue is unavailable right now. Nothing was saved; please try again shortly."
QUEUE_FULL = "Too many messages are waiting to be answered. Please try again in a minute."
DB_BUSY = "The database is busy or unavailable. Please try again shortly."


class OpenAIError(Exception):
    """An error to report in OpenAI's shape (raised by the /v1 routes)."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


# The code of an error raised without one, by its HTTP status.
_CODES = {
    400: ErrorCode.INVALID_INPUT,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.BODY_TOO_LARGE,
    422: ErrorCode.INVALID_INPUT,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.QUEUE_UNAVAILABLE,
}


def error_response(
    request: Request,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The error in the shape of the route: OpenAI's under /v1, ours (`ErrorOut`) elsewhere."""
    if request.url.path.startswith("/v1"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            kind = "rate_limit_error"
        body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    else:
        body = {"detail": message, "code": code or _CODES.get(status, ErrorCode.INTERNAL), **(extra or {})}
    return JSONResponse(status_code=status, content=body, headers=dict(headers or {}))


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    status = 400 if request.url.path.startswith("/v1") else 422
    listing = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
    return error_response(request, status, "; ".join(_describe(e) for e in errors), extra={"errors": listing})


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = "invalid_api_key" if exc.status_code == 401 else None
    return error_response(request, exc.status_code, str(exc.detail), exc.headers, code=code)


async def _openai(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenAIError)
    return JSONResponse(
        status_code=exc.status,
        content={"error": {"message": exc.message, "type": exc.type, "param": None, "code": exc.code}},
    )


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    message = f"Too many messages from this user. Please wait {exc.retry_after} seconds."
    return error_response(
        request, 429, message, {"Retry-After": str(exc.retry_after)}, code="rate_limit_exceeded"
    )


async def _too_many_active(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyActive)
    return error_response(request, 429, str(exc), {"Retry-After": "10"}, code=ErrorCode.TOO_MANY_ACTIVE)


async def _quota_exceeded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    wait = max(1, math.ceil((exc.resets_at - datetime.now(UTC)).total_seconds()))
    return error_response(
        request,
        429,
        f"{exc} It starts anew at {exc.resets_at:%Y-%m-%d %H:%M} UTC.",
        {"Retry-After": str(wait)},
        code=ErrorCode.QUOTA_EXCEEDED,
        extra={"limit": exc.limit, "resets_at": exc.resets_at.isoformat(), "period": exc.period.value},
    )


async def _too_many_streams(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyStreams)
    return error_response(request, 429, str(exc), {"Retry-After": "5"}, code=ErrorCode.TOO_MANY_STREAMS)


async def _text_too_long(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TextTooLong)
    return error_response(request, 422, str(exc), code=ErrorCode.TEXT_TOO_LONG, extra={"limit": exc.limit})


async def _voice_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VoiceRefused)
    extra = {"limit": exc.limit} if exc.limit is not None else None
    return error_response(request, exc.status, str(exc), code=exc.code, extra=extra)


async def _document_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DocumentRefused)
    return error_response(request, exc.status, str(exc))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFound)
    return error_response(request, 404, str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Conflict)
    return error_response(request, 409, str(exc))


async def _queue_down(request: Request, _exc: Exception) -> JSONResponse:
    return error_response(request, 503, QUEUE_DOWN, {"Retry-After": "5"})


async def _queue_full(request: Request, _exc: Exception) -> JSONResponse:
    return error_response(request, 503, QUEUE_FULL, {"Retry-After": "30"}, code=ErrorCode.QUEUE_FULL)


async def _db_busy(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError)
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(request, 503, DB_BUSY, {"Retry-After": "2"}, code=ErrorCode.DATABASE_BUSY)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "Internal error. It has been logged.")


class RefuseNulInUrl:
    """Refuse a NUL character anywhere in the path or the query (422) before any route sees it.

    Nobody means one, and PostgreSQL cannot store or even compare it: an id like `ab%00cd` would
    otherwise turn a lookup into a database error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            response = error_response(Request(scope), 422, "The URL must not contain NUL characters.")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(OpenAIError, _openai)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(TooManyActive, _too_many_active)
    app.add_exception_handler(TooManyStreams, _too_many_streams)
    app.add_exception_handler(QuotaExceeded, _quota_exceeded)
    app.add_exception_handler(TextTooLong, _text_too_long)
    app.add_exception_handler(VoiceRefused, _voice_refused)
    app.add_exception_handler(DocumentRefused, _document_refused)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(QueueUnavailable, _queue_down)
    app.add_exception_handler(RedisError, _queue_down)
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(OperationalError, _db_busy)
    app.add_exception_handler(Exception, _unexpected)
