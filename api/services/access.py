"""Who may talk to the bot: requests from unknown people, and the admins' decisions, kept per user."""

from __future__ import annotations

from sqlalchemy import select

from api.services.users import get_or_create_user
from shared.db import Database
from shared.models import AccessStatus, User, utcnow
from shared.schemas import AccessOut


def _out(user: User, created: bool = False) -> AccessOut:
    return AccessOut(
        user_id=user.external_id,
        access=AccessStatus(user.access) if user.access else None,
        display_name=user.display_name,
        changed_at=user.access_changed_at,
        created=created,
    )


def request_access(db: Database, user_id: str, display_name: str | None) -> AccessOut:
    """File a request for a person with no decision yet; otherwise report where they stand."""
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        if display_name:
            user.display_name = display_name
        if user.access is not None:
            return _out(user)
        user.access, user.access_changed_at = AccessStatus.REQUESTED, utcnow()
        return _out(user, created=True)


def decide(db: Database, user_id: str, access: AccessStatus) -> AccessOut:
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        user.access, user.access_changed_at = access, utcnow()
        return _out(user)


def current(db: Database, user_id: str) -> AccessOut:
    with db.reading() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        return _out(user) if user else AccessOut(user_id=user_id, access=None)


def listing(db: Database, status: AccessStatus | None, prefix: str, limit: int) -> list[AccessOut]:
    """People with a request or a decision, the newest change first."""
    with db.reading() as session:
        query = select(User).where(
            User.access.is_not(None), User.external_id.startswith(prefix, autoescape=True)
        )
        if status is not None:
            query = query.where(User.access == status)
        users = session.scalars(query.order_by(User.access_changed_at.desc()).limit(limit)).all()
        return [_out(user) for user in users]
