"""/v1/embeddings at the gateway: texts admitted and recorded as any work is, queued for a worker,
waited for here, and their vectors handed over once (then dropped from the database).

Vectors are float32 bytes end to end, as OpenAI's `encoding_format: base64` carries them, so the
gateway never needs numpy: `floats` reads them with the standard library.
"""

from __future__ import annotations

import array
import base64
import json
import logging
import sys
import uuid
from dataclasses import dataclass
from functools import partial

from rq import Queue
from sqlalchemy import delete, select, update
from starlette.concurrency import run_in_threadpool

from api.services.changes import TaskChanges
from api.services.stream import settled
from api.services.tasks import Limits, admit, admit_within
from api.services.users import get_or_create_user
from shared.db import Database
from shared.enums import EmbeddingFailure
from shared.jobs import enqueue_embedding
from shared.models import EmbeddingRequest, TaskStatus, utcnow

log = logging.getLogger(__name__)


def submit(
    db: Database,
    queue: Queue,
    user_id: str,
    texts: list[str],
    as_query: bool,
    limits: Limits,
    max_queue: int,
) -> str:
    """Record and queue the texts, admitted as every other kind of work; returns the id to wait for."""
    admit(queue, user_id, limits)
    request_id = uuid.uuid4().hex
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        admit_within(session, user, limits, max_queue)
        session.add(
            EmbeddingRequest(
                id=request_id,
                user_id=user.id,
                texts=json.dumps(texts, ensure_ascii=False),
                as_query=as_query,
            )
        )
    try:
        enqueue_embedding(queue, request_id)
    except Exception:
        with db.writing() as session:
            session.execute(delete(EmbeddingRequest).where(EmbeddingRequest.id == request_id))
        raise
    log.info("embedding=%s user=%s %d text(s) queued", request_id, user_id, len(texts))
    return request_id


@dataclass(frozen=True)
class Outcome:
    status: TaskStatus
    vectors: bytes | None
    dimensions: int | None
    model_name: str | None
    prompt_tokens: int
    error_code: str | None


_OUTCOME = select(
    EmbeddingRequest.status,
    EmbeddingRequest.vectors,
    EmbeddingRequest.dimensions,
    EmbeddingRequest.model_name,
    EmbeddingRequest.prompt_tokens,
    EmbeddingRequest.error_code,
)


def outcome(db: Database, request_id: str) -> Outcome:
    with db.reading() as session:
        row = session.execute(_OUTCOME.where(EmbeddingRequest.id == request_id)).one()
    return Outcome(TaskStatus(row[0]), row[1], row[2], row[3], row[4] or 0, row[5])


def _handed_over(db: Database, request_id: str) -> None:
    """The vectors are the client's now: only the tokens (for the quota) stay."""
    with db.writing() as session:
        session.execute(
            update(EmbeddingRequest).where(EmbeddingRequest.id == request_id).values(vectors=None)
        )


def _give_up(db: Database, request_id: str) -> None:
    """Fail a request nobody embedded in time; a worker that takes its job later finds nothing to do."""
    waiting = [TaskStatus.QUEUED, TaskStatus.STARTED]
    with db.writing() as session:
        session.execute(
            update(EmbeddingRequest)
            .where(EmbeddingRequest.id == request_id, EmbeddingRequest.status.in_(waiting))
            .values(
                status=TaskStatus.FAILED,
                error_code=EmbeddingFailure.TIMEOUT,
                texts=None,
                finished_at=utcnow(),
            )
        )


async def wait_for(db: Database, changes: TaskChanges, request_id: str, timeout: float) -> Outcome:
    """The request once embedded or failed (its vectors then dropped from the database); one still
    waiting after `timeout` is failed here."""
    result = await settled(changes, request_id, partial(run_in_threadpool, outcome, db, request_id), timeout)
    if result is not None:
        await run_in_threadpool(_handed_over, db, request_id)
        return result
    log.warning("embedding=%s not embedded within %.0f s", request_id, timeout)
    await run_in_threadpool(_give_up, db, request_id)
    return await run_in_threadpool(outcome, db, request_id)


def rows(vectors: bytes, dimensions: int, as_base64: bool) -> list[list[float]] | list[str]:
    """Each text's vector: a list of floats, or (OpenAI's base64) its little-endian float32 bytes."""
    width = dimensions * 4
    pieces = [vectors[at : at + width] for at in range(0, len(vectors), width)]
    if as_base64:
        return [base64.b64encode(piece).decode("ascii") for piece in pieces]
    return [floats(piece) for piece in pieces]


def floats(piece: bytes) -> list[float]:
    values = array.array("f")
    values.frombytes(piece)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()
