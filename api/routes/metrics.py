"""GET /metrics in Prometheus' text format (the operator's key only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from api.auth import OperatorDep, guard_of
from api.deps import DbDep, QueueDep
from api.services.metrics import render

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(_operator: OperatorDep, request: Request, db: DbDep, queue: QueueDep) -> PlainTextResponse:
    """Queue length, tasks by status, workers, speed, queue wait and end-to-end latency."""
    return PlainTextResponse(
        render(db, queue, guard_of(request).pacer), media_type="text/plain; version=0.0.4"
    )
