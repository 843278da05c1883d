"""People and documents written straight into the database, for the index's and search's tests."""

from __future__ import annotations

import secrets

from sqlalchemy import insert

from shared.db import Database
from shared.models import Conversation, Document, TaskStatus, User
from worker import passages
from worker.reading.chunks import Passage


def add_person(db: Database, name: str) -> tuple[int, int]:
    """A person and a conversation of theirs: (user id, conversation id)."""
    with db.writing() as session:
        user_id = session.scalar(insert(User).values(external_id=name).returning(User.id))
        conversation = session.scalar(insert(Conversation).values(user_id=user_id).returning(Conversation.id))
    assert user_id is not None and conversation is not None
    return user_id, conversation


def add_document(
    db: Database,
    person: tuple[int, int],
    parts: list[Passage],
    vectors: passages.Vectors | None = None,
    content: bytes | None = None,
) -> str:
    """A document of `person`'s conversation: read, with `parts` as its passages (and `vectors`),
    or, given its `content`, queued for a worker to read."""
    document_id = secrets.token_hex(16)
    with db.writing() as session:
        session.execute(
            insert(Document).values(
                id=document_id,
                user_id=person[0],
                conversation_id=person[1],
                name=f"{document_id[:6]}.pdf",
                status=TaskStatus.FINISHED if content is None else TaskStatus.QUEUED,
                content=content,
                size_bytes=1,
                pages_read=0,
                passages=len(parts),
            )
        )
        passages.store(session, document_id, parts, vectors)
    return document_id
