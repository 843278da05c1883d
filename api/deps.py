"""Request-scoped dependencies: the resources opened in the lifespan, and the API key check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from rq import Queue

from shared.config import GatewaySettings, QueueSettings
from shared.db import Database


def get_db(request: Request) -> Database:
    db: Database = request.state.db
    return db


def get_queue(request: Request) -> Queue:
    queue: Queue = request.state.queue
    return queue


def get_gateway_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.state.gateway_settings
    return settings


def get_queue_settings(request: Request) -> QueueSettings:
    settings: QueueSettings = request.state.queue_settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
QueueDep = Annotated[Queue, Depends(get_queue)]
GatewaySettingsDep = Annotated[GatewaySettings, Depends(get_gateway_settings)]
QueueSettingsDep = Annotated[QueueSettings, Depends(get_queue_settings)]

_header_key = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def require_api_key(
    settings: GatewaySettingsDep,
    header_key: Annotated[str | None, Depends(_header_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Accept the key from `X-API-Key` or `Authorization: Bearer`; compare in constant time."""
    given = header_key or (bearer.credentials if bearer else None)
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    if not given or expected is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="A valid API key is required (X-API-Key header or Authorization: Bearer).",
            headers={"WWW-Authenticate": "Bearer"},
        )
