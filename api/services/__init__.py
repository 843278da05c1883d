"""What the gateway does, apart from HTTP: the routes call these and stay thin."""

from __future__ import annotations

from datetime import datetime

from shared.schemas import QuotaPeriodName


class QueueUnavailable(Exception):
    """Redis cannot be reached; nothing was queued."""


class QueueFull(Exception):
    """Too many tasks are waiting; the request was refused."""


class RateLimited(Exception):
    """This user sent too many requests; `retry_after` says when to try again (seconds)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after}s")
        self.retry_after = retry_after


class NotFound(Exception):
    """No such task (or user); the message says which."""


class Conflict(Exception):
    """The request does not fit the task's current state; the message says why."""


class TooManyActive(Exception):
    """The person already has as many answers queued or in progress as allowed."""


class TooManyStreams(Exception):
    """Too many open streams or long polls (for this person, or overall); the message says which."""


class TextTooLong(Exception):
    """A message over MAX_TEXT_CHARS; `limit` is what the client must cut it to."""

    def __init__(self, limit: int, got: int) -> None:
        super().__init__(f"text: must be at most {limit} characters (got {got})")
        self.limit = limit


class QuotaExceeded(Exception):
    """The person used their token quota for the day or the month; `resets_at` is when it starts anew."""

    def __init__(self, period: QuotaPeriodName, limit: int, resets_at: datetime) -> None:
        word = "daily" if period == QuotaPeriodName.DAY else "monthly"
        super().__init__(f"You have used your {word} quota of {limit} tokens.")
        self.period = period
        self.limit = limit
        self.resets_at = resets_at
