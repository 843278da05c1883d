"""Errors mapped at the edge to JSON with a readable `detail`; no traceback leaves the process."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from api.services import Conflict, NotFound, QueueFull, QueueUnavailable

log = logging.getLogger(__name__)

QUEUE_DOWN = "The message queue is unavailable right now. Nothing was saved; please try again shortly."


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}"


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    return JSONResponse(
        status_code=422,
        content={
            "detail": "; ".join(_describe(e) for e in errors),
            "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors],
        },
    )


async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
    return JSONResponse(status_code=409, content={"detail": str(exc)})


async def _queue_down(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": QUEUE_DOWN}, headers={"Retry-After": "5"})


async def _queue_full(_request: Request, _exc: QueueFull) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": "Too many messages are waiting to be answered. Please try again in a minute."},
        headers={"Retry-After": "30"},
    )


async def _db_busy(request: Request, exc: OperationalError) -> JSONResponse:
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=503,
        content={"detail": "The database is busy or unavailable. Please try again shortly."},
        headers={"Retry-After": "2"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "Internal error. It has been logged."})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(NotFound, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(Conflict, _conflict)  # type: ignore[arg-type]
    app.add_exception_handler(QueueUnavailable, _queue_down)
    app.add_exception_handler(RedisError, _queue_down)
    app.add_exception_handler(QueueFull, _queue_full)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _db_busy)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
