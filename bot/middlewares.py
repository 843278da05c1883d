"""How fast people may write to the bot, and in which language it answers (who may: bot.access)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from bot.texts import language_of, t

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class LanguageMiddleware(BaseMiddleware):
    """Puts `lang` ("en" or "ru", from the user's Telegram language) into every handler's data."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        data["lang"] = language_of(user.language_code if user else None)
        return await handler(event, data)


class RateLimitMiddleware(BaseMiddleware):
    """At most `limit` messages and button presses per user in any `window` seconds (one budget for
    both: a button queues work as a message does); the first one over is told why."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._sent: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or not isinstance(event, Message | CallbackQuery):
            return await handler(event, data)
        now = self.clock()
        sent = self._sent.setdefault(user.id, deque())
        while sent and now - sent[0] >= self.window:
            sent.popleft()
        if len(sent) >= self.limit:
            wait = max(1, round(self.window - (now - sent[0])))
            text = t(language_of(user.language_code), "rate_limited", seconds=wait)
            if isinstance(event, CallbackQuery):
                await event.answer(text)  # a press always gets its answer, or the button keeps spinning
            elif now - self._warned.get(user.id, -self.window) >= self.window:
                self._warned[user.id] = now
                await event.answer(text)
            return None
        sent.append(now)
        return await handler(event, data)
