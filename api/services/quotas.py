"""Token quotas per person, by the calendar day and month (UTC), with an admin's override.

What counts is every token of the person's answers, prompt and reply, as the worker recorded
them, and of the texts they had embedded (/v1/embeddings); answers still being written count
once they are. A person over quota gets the time the quota starts anew, never a silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from api.services import NotFound, QuotaExceeded
from shared.account_schemas import Quota, QuotaPeriod, QuotaSetting
from shared.db import Database
from shared.models import EmbeddingRequest, Task, User
from shared.schemas import QuotaPeriodName

_USED_SINCE = select(
    func.coalesce(
        func.sum(func.coalesce(Task.prompt_tokens, 0) + func.coalesce(Task.completion_tokens, 0)), 0
    )
).where(Task.user_id == bindparam("user_id"), Task.created_at >= bindparam("since"))
# The texts a person had embedded (/v1/embeddings) count as what a model read for them.
_EMBEDDED_SINCE = select(func.coalesce(func.sum(func.coalesce(EmbeddingRequest.prompt_tokens, 0)), 0)).where(
    EmbeddingRequest.user_id == bindparam("user_id"), EmbeddingRequest.created_at >= bindparam("since")
)


@dataclass(frozen=True)
class Defaults:
    """The operator's quotas for everyone (QUOTA_TOKENS_PER_DAY / _MONTH); None: no quota."""

    per_day: int | None = None
    per_month: int | None = None


def _periods(now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """Start and end of the current UTC day and month (naive UTC, as the database keeps times)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return day, day + timedelta(days=1), month, next_month


def _limits(user: User, defaults: Defaults) -> tuple[int | None, int | None]:
    day = user.quota_day if user.quota_day is not None else defaults.per_day
    month = user.quota_month if user.quota_month is not None else defaults.per_month
    return day, month


def _used(session: Session, user_id: int, since: datetime) -> int:
    values = {"user_id": user_id, "since": since}
    return int(session.scalar(_USED_SINCE, values) or 0) + int(session.scalar(_EMBEDDED_SINCE, values) or 0)


def check(session: Session, user: User, defaults: Defaults, now: datetime | None = None) -> None:
    """Refuse a new answer to a person who has used a quota up (nothing is read without quotas)."""
    per_day, per_month = _limits(user, defaults)
    if per_day is None and per_month is None:
        return
    day, day_ends, month, month_ends = _periods((now or datetime.now(UTC)).replace(tzinfo=None))
    if per_month is not None and _used(session, user.id, month) >= per_month:
        raise QuotaExceeded(QuotaPeriodName.MONTH, per_month, month_ends.replace(tzinfo=UTC))
    if per_day is not None and _used(session, user.id, day) >= per_day:
        raise QuotaExceeded(QuotaPeriodName.DAY, per_day, day_ends.replace(tzinfo=UTC))


def standing(db: Database, user_id: str, defaults: Defaults, now: datetime | None = None) -> Quota:
    """What the person used today and this month, against their quotas."""
    day, day_ends, month, month_ends = _periods((now or datetime.now(UTC)).replace(tzinfo=None))
    with db.reading() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        per_day, per_month = _limits(user, defaults) if user else (defaults.per_day, defaults.per_month)
        used_day = _used(session, user.id, day) if user else 0
        used_month = _used(session, user.id, month) if user else 0
    return Quota(
        day=QuotaPeriod(used=used_day, limit=per_day, resets_at=day_ends.replace(tzinfo=UTC)),
        month=QuotaPeriod(used=used_month, limit=per_month, resets_at=month_ends.replace(tzinfo=UTC)),
    )


def override(db: Database, user_id: str, setting: QuotaSetting) -> None:
    """An admin's quotas for one person (None: back to the operator's defaults)."""
    with db.writing() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        if user is None:
            raise NotFound("No such user.")
        user.quota_day, user.quota_month = setting.per_day, setting.per_month
