"""Deleting what users and operators no longer want kept: old conversations, or a whole user."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select

from shared.db import Database
from shared.models import Conversation, Message, Task, TaskStatus, User, utcnow

log = logging.getLogger(__name__)
_ACTIVE = (TaskStatus.QUEUED, TaskStatus.STARTED)


def purge_conversations(db: Database, older_than_days: int, now: datetime | None = None) -> int:
    """Delete conversations whose newest message is older than the limit (none with work in progress)."""
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    newest = (
        select(Message.conversation_id, func.max(Message.created_at).label("last"))
        .group_by(Message.conversation_id)
        .subquery()
    )
    busy = exists().where(Task.conversation_id == Conversation.id, Task.status.in_(_ACTIVE))
    with db.writing() as session:
        ids = list(
            session.scalars(
                select(Conversation.id)
                .join(newest, newest.c.conversation_id == Conversation.id, isouter=True)
                .where(func.coalesce(newest.c.last, Conversation.created_at) < cutoff, ~busy)
            )
        )
        if ids:
            # Tasks first: they point at messages, which go with their conversation.
            session.execute(delete(Task).where(Task.conversation_id.in_(ids)))
            session.execute(delete(Message).where(Message.conversation_id.in_(ids)))
            session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
    if ids:
        log.info("retention: deleted %d conversation(s) older than %d days", len(ids), older_than_days)
    return len(ids)


def forget_user(db: Database, external_id: str) -> bool:
    """Delete everything kept about a user, answers in progress included."""
    with db.writing() as session:
        user = session.scalar(select(User).where(User.external_id == external_id))
        if user is None:
            return False
        # A worker answering one of these tasks notices it is gone at its next write, and stops.
        conversations = select(Conversation.id).where(Conversation.user_id == user.id)
        session.execute(delete(Task).where(Task.user_id == user.id))
        session.execute(delete(Message).where(Message.conversation_id.in_(conversations)))
        session.execute(delete(Conversation).where(Conversation.user_id == user.id))
        session.execute(delete(User).where(User.id == user.id))
    log.info("user=%s forgotten: all their data deleted", external_id)
    return True
