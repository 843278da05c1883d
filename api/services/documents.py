"""Documents a person asks about: received, queued for reading, listed, shown and deleted.

A document belongs to the person who sent it and to the conversation that was current when it
came; every function here takes the person, and finds nothing of anyone else's (NotFound).
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import Row, Select, delete, func, insert, select
from sqlalchemy.orm import Session

from api.services import NotFound, QueueUnavailable, TooManyActive
from api.services.tasks import Limits, admit, ensure_room
from api.services.users import current_conversation, get_or_create_user
from shared.config import DocumentSettings
from shared.db import Database
from shared.jobs import enqueue_reading
from shared.models import Document, TaskStatus, User, utcnow
from shared.schemas import DocumentOut

log = logging.getLogger(__name__)

_SHOWN = (
    Document.id,
    Document.name,
    Document.conversation_id,
    Document.status,
    Document.size_bytes,
    Document.kind,
    Document.pages,
    Document.pages_read,
    Document.passages,
    Document.error_code,
    Document.error,
    Document.created_at,
)


class DocumentRefused(Exception):
    """A document refused before it is recorded: empty, too large, or one too many."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _out(row: Row[Any]) -> DocumentOut:
    values = dict(row._mapping)
    values["document_id"] = values.pop("id")
    return DocumentOut.model_validate(values)


def check_upload(settings: DocumentSettings, data: bytes) -> None:
    if not data:
        raise DocumentRefused(422, "The file is empty.")
    if len(data) > settings.document_max_bytes:
        raise DocumentRefused(413, f"The file is larger than {settings.document_max_bytes} bytes.")


def submit(
    db: Database,
    queue: Queue,
    user_id: str,
    chat_id: str | None,
    name: str,
    data: bytes,
    settings: DocumentSettings,
    limits: Limits,
    max_queue: int,
) -> DocumentOut:
    """Record a document in the person's current conversation and queue its reading."""
    check_upload(settings, data)
    admit(queue, user_id, limits)
    document_id = secrets.token_hex(16)
    name = _shown_name(name)
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        ensure_room(session, max_queue)
        _ensure_room_for_one_more(session, user, settings.document_max_per_user)
        conversation = current_conversation(session, user, chat_id or "", name)
        session.execute(
            insert(Document),
            {
                "id": document_id,
                "user_id": user.id,
                "conversation_id": conversation.id,
                "name": name,
                "status": TaskStatus.QUEUED,
                "content": data,
                "size_bytes": len(data),
                "pages_read": 0,
                "passages": 0,
                "created_at": utcnow(),
            },
        )
    try:
        enqueue_reading(queue, document_id)
    except RedisError as exc:
        # Leave nothing behind: the client is told to try again and sends the file anew.
        with db.writing() as session:
            session.execute(delete(Document).where(Document.id == document_id))
        log.warning("document=%s dropped, Redis unavailable: %s", document_id, exc)
        raise QueueUnavailable from exc
    log.info("document=%s user=%s queued (%d bytes)", document_id, user_id, len(data))
    return get(db, user_id, document_id)


def _shown_name(filename: str) -> str:
    """The file's name as lists and sources show it: without control or direction-changing
    characters (a NUL cannot be stored by PostgreSQL; a right-to-left mark can disguise a name)."""
    kept = "".join(c for c in filename if unicodedata.category(c) not in ("Cc", "Cf")).strip()
    return kept[:200] or "document"


def _ensure_room_for_one_more(session: Session, user: User, most: int) -> None:
    kept = session.scalar(select(func.count()).where(Document.user_id == user.id)) or 0
    if kept >= most:
        raise TooManyActive(f"You keep {kept} documents already; delete some before sending more.")


def _owned(user_id: str) -> Select[*tuple[Any, ...]]:
    return select(*_SHOWN).join(User, User.id == Document.user_id).where(User.external_id == user_id)


def get(db: Database, user_id: str, document_id: str) -> DocumentOut:
    with db.reading() as session:
        row = session.execute(_owned(user_id).where(Document.id == document_id)).one_or_none()
    if row is None:
        raise NotFound("No document with this id.")
    return _out(row)


def listing(db: Database, user_id: str, conversation_id: int | None) -> list[DocumentOut]:
    """The person's documents (of one conversation, if given), newest first."""
    query = _owned(user_id).order_by(Document.created_at.desc(), Document.id)
    if conversation_id is not None:
        query = query.where(Document.conversation_id == conversation_id)
    with db.reading() as session:
        return [_out(row) for row in session.execute(query)]


def remove(db: Database, user_id: str, document_id: str) -> None:
    """Delete a document of the person's, its passages and their index entries with it."""
    with db.writing() as session:
        owned = select(Document.id).join(User, User.id == Document.user_id)
        owned = owned.where(User.external_id == user_id, Document.id == document_id)
        if session.scalar(owned) is None:
            raise NotFound("No document with this id.")
        session.execute(delete(Document).where(Document.id == document_id))
    log.info("document=%s deleted", document_id)
