"""Per-user request limits, counted in Redis so that every gateway process shares them."""

from __future__ import annotations

import time

from redis import Redis
from redis.exceptions import RedisError

from api.services import RateLimited

WINDOW_SECONDS = 60


def check(redis: Redis, user_id: str, per_minute: int, now: float | None = None) -> None:
    """Count one request for `user_id`; raise `RateLimited` past `per_minute` in the current minute.

    A fixed one-minute window: cheap (one INCR) and good enough against floods. Without Redis the
    request goes on unlimited, since it cannot be queued either and will be refused for that.
    """
    if per_minute <= 0:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    key = f"ai_assistant:rate:{user_id}:{window}"
    try:
        pipe = redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2)
        count = int(pipe.execute()[0])
    except RedisError:
        return
    if count > per_minute:
        raise RateLimited(retry_after=max(1, int((window + 1) * WINDOW_SECONDS - now) + 1))
