"""Who may talk to the bot, decided by its admins and kept in the gateway's database.

Admins, TELEGRAM_ALLOWED_USERS and, with TELEGRAM_ALLOW_EVERYONE=true, anyone pass at once. For
anybody else the first message files an access request (the gateway says whether this call filed
it), the person is told so, and each admin gets the request with Allow / Deny buttons. Decisions
take effect at once: the gate forgets what it knew of that person.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
    User,
)

from bot.buttons import AccessDecision, Verdict
from bot.gateway import GatewayClient, GatewayRejected, GatewayUnavailable
from bot.middlewares import Handler
from bot.texts import language_of, t
from shared.config import BotSettings
from shared.enums import AccessStatus
from shared.identity import telegram_user

log = logging.getLogger(__name__)

# How long the gate trusts what the gateway said of a person (a decision made here is seen at once).
REMEMBER_SECONDS = 60.0
# A person still waiting is reminded of it at most this often.
REMIND_SECONDS = 600.0


def display_name(user: User) -> str:
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return f"{name} (@{user.username})" if user.username else name or str(user.id)


def decision_keyboard(lang: str, user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t(lang, "button_allow"),
                    callback_data=AccessDecision(verdict=Verdict.ALLOW, user_id=user_id).pack(),
                ),
                InlineKeyboardButton(
                    text=t(lang, "button_deny"),
                    callback_data=AccessDecision(verdict=Verdict.BLOCK, user_id=user_id).pack(),
                ),
            ]
        ]
    )


class AccessGate(BaseMiddleware):
    def __init__(
        self, settings: BotSettings, gateway: GatewayClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.everyone = settings.telegram_allow_everyone
        self.admins = set(settings.telegram_admin_ids)
        self.allowed = set(settings.telegram_allowed_users)
        self.gateway = gateway
        self.clock = clock
        self._known: dict[int, tuple[AccessStatus, float]] = {}
        self._reminded: dict[int, float] = {}
        # The language each waiting person writes in, to tell them the decision in it.
        self.languages: dict[int, str] = {}

    def forget(self, user_id: int) -> None:
        self._known.pop(user_id, None)
        self._reminded.pop(user_id, None)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or self.everyone or user.id in self.admins or user.id in self.allowed:
            return await handler(event, data)
        if not isinstance(event, Message | CallbackQuery):
            return None  # e.g. a draft's stop button: nothing to ask for
        lang = language_of(user.language_code)
        try:
            status, created = await self._status(user)
        except (GatewayUnavailable, GatewayRejected) as exc:
            log.warning("user=%s access unknown, gateway: %s", user.id, exc)
            await _tell(event, t(lang, "gateway_down"))
            return None
        if status == AccessStatus.ALLOWED:
            return await handler(event, data)
        if status == AccessStatus.BLOCKED:
            if self._remind(user.id):
                await _tell(event, t(lang, "not_allowed"))
            return None
        self.languages[user.id] = lang
        if created:
            self._reminded[user.id] = self.clock()
            await _tell(event, t(lang, "access_requested"))
            await self._ask_admins(data["bot"], user)
        elif self._remind(user.id):
            await _tell(event, t(lang, "access_pending"))
        elif isinstance(event, CallbackQuery):
            await event.answer()
        return None

    async def _status(self, user: User) -> tuple[AccessStatus, bool]:
        known = self._known.get(user.id)
        if known is not None and known[1] > self.clock():
            return known[0], False
        answer = await self.gateway.request_access(telegram_user(user.id), display_name(user))
        # Filing a request always leaves the person with a status; none would be the gateway's bug.
        status = answer.access or AccessStatus.REQUESTED
        self._known[user.id] = (status, self.clock() + REMEMBER_SECONDS)
        return status, answer.created

    def _remind(self, user_id: int) -> bool:
        now = self.clock()
        if now - self._reminded.get(user_id, -REMIND_SECONDS) < REMIND_SECONDS:
            return False
        self._reminded[user_id] = now
        return True

    async def _ask_admins(self, bot: Bot, user: User) -> None:
        log.info("user=%s asked for access", user.id)
        for admin in self.admins:
            try:
                await bot.send_message(
                    admin,
                    t("en", "access_request_admin", name=display_name(user), id=user.id),
                    reply_markup=decision_keyboard("en", user.id),
                )
            except Exception as exc:  # noqa: BLE001 - an admin who never opened the bot cannot be told
                log.warning("could not tell admin %s of user %s's request: %r", admin, user.id, exc)


async def refused_unless_admin(message: Message, lang: str, admins: set[int] | list[int]) -> bool:
    """True (after telling them) when the sender is not one of the admins."""
    if message.from_user is not None and message.from_user.id in admins:
        return False
    await message.answer(t(lang, "admins_only"))
    return True


async def _tell(event: Message | CallbackQuery, text: str) -> None:
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)
    else:
        await event.answer(text)
