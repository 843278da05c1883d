"""Personal credentials: invites (one-time links), web sessions and API tokens.

A credential is a random secret handed to one person; the database keeps only its SHA-256, so a
copy of the database (a backup) lets nobody in. The person's user id comes from the credential,
never from what the client says.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from api.services.users import get_or_create_user
from shared.db import Database
from shared.models import AccessStatus, Credential, CredentialKind, User, utcnow

# Distinguishes our secrets in logs and secret scanners; the rest is 256 random bits.
PREFIX = {CredentialKind.INVITE: "aai_", CredentialKind.SESSION: "aas_", CredentialKind.API: "aat_"}


SESSION_ONLY = frozenset({CredentialKind.SESSION})


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Holder:
    """Whose a credential is."""

    credential_id: int
    user_id: str
    kind: CredentialKind
    expires_at: datetime | None


def issue(
    db: Database, user_id: str, kind: CredentialKind, lifetime: timedelta | None, label: str | None = None
) -> tuple[str, datetime | None]:
    """A new secret for `user_id` (created if new); returns it and when it expires."""
    token = PREFIX[kind] + secrets.token_urlsafe(32)
    expires = utcnow() + lifetime if lifetime is not None else None
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        session.add(
            Credential(user_id=user.id, kind=kind, token_hash=digest(token), label=label, expires_at=expires)
        )
    return token, expires


def resolve(db: Database, token: str, kinds: frozenset[CredentialKind]) -> Holder | None:
    """The holder of a live credential of one of `kinds`, or None (also for a blocked person's)."""
    if not token.startswith(tuple(PREFIX[kind] for kind in kinds)):
        return None
    with db.reading() as session:
        row = session.execute(
            select(Credential.id, Credential.kind, Credential.expires_at, User.external_id, User.access)
            .join(User, Credential.user_id == User.id)
            .where(Credential.token_hash == digest(token))
        ).first()
    if row is None or row.kind not in kinds:
        return None
    # A person an admin blocked is out by every way in, not only through the bot.
    if row.access == AccessStatus.BLOCKED:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return Holder(row.id, row.external_id, CredentialKind(row.kind), row.expires_at)


def redeem_invite(db: Database, invite: str, session_lifetime: timedelta) -> tuple[str, datetime | None]:
    """Exchange a one-time invite for a web session of the same person; raises InvalidInvite."""
    holder = resolve(db, invite, frozenset({CredentialKind.INVITE}))
    if holder is None:
        raise InvalidInvite
    with db.writing() as session:
        # Deleting is the claim: of two pages opening the same link at once, one gets the session.
        claimed = session.execute(delete(Credential).where(Credential.id == holder.credential_id))
        if not getattr(claimed, "rowcount", 0):
            raise InvalidInvite
    return issue(db, holder.user_id, CredentialKind.SESSION, session_lifetime)


# What a person holds and may revoke: invites are one-time links, gone once used or expired.
_HELD = (CredentialKind.SESSION, CredentialKind.API)


def held_by(db: Database, user_id: str) -> list[Credential]:
    """The live web sessions and API tokens of `user_id`, the newest first."""
    with db.reading() as session:
        return list(
            session.scalars(
                select(Credential)
                .join(User, Credential.user_id == User.id)
                .where(User.external_id == user_id, Credential.kind.in_(_HELD))
                .where((Credential.expires_at.is_(None)) | (Credential.expires_at > utcnow()))
                .order_by(Credential.created_at.desc(), Credential.id.desc())
            ).all()
        )


def revoke_held(
    db: Database, user_id: str, credential_id: int | None = None, kind: CredentialKind | None = None
) -> int:
    """Delete `user_id`'s credential `credential_id` (or all they hold, of `kind` if given); returns
    how many went. Another person's credential is never touched, whatever its id."""
    return _delete_of(db, user_id, tuple(k for k in _HELD if kind in (None, k)), credential_id)


def drop_invites(db: Database, user_id: str) -> int:
    """Delete `user_id`'s unopened invites (a newer link is about to be handed out)."""
    return _delete_of(db, user_id, (CredentialKind.INVITE,))


def _delete_of(
    db: Database, user_id: str, kinds: tuple[CredentialKind, ...], credential_id: int | None = None
) -> int:
    owner = select(User.id).where(User.external_id == user_id).scalar_subquery()
    query = delete(Credential).where(Credential.user_id == owner, Credential.kind.in_(kinds))
    if credential_id is not None:
        query = query.where(Credential.id == credential_id)
    with db.writing() as session:
        result = session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


def purge_expired(db: Database) -> int:
    with db.writing() as session:
        result = session.execute(delete(Credential).where(Credential.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


class InvalidInvite(Exception):
    """The link was already used, has expired, or was never issued."""


def link(public_url: str | None, invite: str) -> str | None:
    """The page's address carrying the invite after `#`: browsers never send that part to a server,
    so the secret stays out of logs and proxies."""
    return f"{public_url.rstrip('/')}/#invite={invite}" if public_url else None
