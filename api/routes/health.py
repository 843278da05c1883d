"""Liveness of the parts the gateway depends on."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import DbDep, QueueDep
from api.services.tasks import queued_count
from shared.jobs import count_worker_processes
from shared.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(db: DbDep, queue: QueueDep) -> JSONResponse:
    """Redis, the database and the number of live workers; 503 when Redis or the database is down."""
    redis_ok, workers = True, 0
    try:
        queue.connection.ping()
        workers = count_worker_processes(queue)
    except RedisError:
        redis_ok = False
    database_ok, queued = True, None
    try:
        with db.reading() as session:
            session.execute(text("SELECT 1"))
            queued = queued_count(session)
    except SQLAlchemyError:
        database_ok = False
    healthy = redis_ok and database_ok
    body = Health(
        status="ok" if healthy else "degraded",
        redis=redis_ok,
        database=database_ok,
        workers=workers,
        queued=queued,
    )
    return JSONResponse(status_code=200 if healthy else 503, content=body.model_dump())
