"""Request-scoped dependencies: the resources opened in the lifespan, and the API key check.

They are coroutines although none of them waits on anything: FastAPI runs a plain function
dependency in its thread pool, and a thread hop per dependency costs more than the work.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from rq import Queue

from api.services.changes import TaskChanges
from shared.config import GatewaySettings, QueueSettings
from shared.db import Database


async def get_db(request: Request) -> Database:
    db: Database = request.state.db
    return db


async def get_queue(request: Request) -> Queue:
    queue: Queue = request.state.queue
    return queue


async def get_changes(request: Request) -> TaskChanges:
    changes: TaskChanges = request.state.changes
    return changes


async def get_gateway_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.state.gateway_settings
    return settings


async def get_queue_settings(request: Request) -> QueueSettings:
    settings: QueueSettings = request.state.queue_settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
QueueDep = Annotated[Queue, Depends(get_queue)]
ChangesDep = Annotated[TaskChanges, Depends(get_changes)]
GatewaySettingsDep = Annotated[GatewaySettings, Depends(get_gateway_settings)]
QueueSettingsDep = Annotated[QueueSettings, Depends(get_queue_settings)]

_header_key = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def require_api_key(
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
