"""Sending a user's message to the gateway and handing the task to the deliverer."""

from __future__ import annotations

import enum
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram import Bot

from bot.buttons import Resend
from bot.delivery import Deliverer, Target, retry_keyboard
from bot.gateway import GatewayClient, GatewayRejected, GatewayUnavailable
from bot.texts import t
from shared.enums import FINAL_STATUSES
from shared.identity import telegram_user
from shared.schemas import ChatAccepted, ErrorCode, QuotaPeriodName

log = logging.getLogger(__name__)


def when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def refusal(exc: GatewayRejected, lang: str) -> str:
    """Why the gateway would not take a message, in the person's words, by the error's code."""
    error = exc.error
    if error.code == ErrorCode.TEXT_TOO_LONG:
        return t(lang, "too_long", limit=error.limit)
    if error.code == ErrorCode.VOICE_DISABLED:
        return t(lang, "voice_disabled")
    if error.code == ErrorCode.VOICE_TOO_LONG:
        return t(lang, "voice_too_long", limit=error.limit)
    if error.code == ErrorCode.QUOTA_EXCEEDED and error.resets_at is not None:
        period = t(lang, "period_monthly" if error.period == QuotaPeriodName.MONTH else "period_daily")
        return t(lang, "quota_exceeded", period=period, limit=error.limit, when=when(error.resets_at))
    return t(lang, "rejected", detail=exc.detail)


@dataclass(frozen=True)
class Pending:
    """A message the gateway could not take, kept so a "Try again" button can send it later."""

    user_id: int
    text: str
    key: str
    target: Target


class Resent(enum.Enum):
    SENT = "sent"
    GONE = "gone"  # sent already, or forgotten (the bot keeps the latest ones only)
    NOT_YOURS = "not_yours"


class Conversations:
    def __init__(self, bot: Bot, gateway: GatewayClient, deliverer: Deliverer, keep: int = 1000) -> None:
        self.bot = bot
        self.gateway = gateway
        self.deliverer = deliverer
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._keep = keep

    async def ask(self, user_id: int, text: str, key: str, target: Target) -> None:
        """Queue `text` for an answer in `target`; the same `key` twice is one task, one answer."""
        send = self.gateway.chat(telegram_user(user_id), text, target.place, key, client_meta=target.meta())
        await self._submit(user_id, send, target, Pending(user_id, text, key, target))

    async def ask_voice(
        self, user_id: int, audio: bytes, duration: int | None, key: str, target: Target
    ) -> None:
        """Queue a voice note: a worker hears it, the words are shown, then answered as if typed."""
        person = telegram_user(user_id)
        send = self.gateway.chat_voice(person, audio, duration, target.place, key, target.meta())
        # No "try again" button keeps the audio in memory: the person sends the note again.
        await self._submit(user_id, send, target, None)

    async def correct(self, user_id: int, task_id: str, text: str, target: Target) -> None:
        """A voice note's words put right: its answer (if still being written) is stopped, and the
        corrected words are answered instead, in its place in the conversation's history."""
        acting = telegram_user(user_id)
        try:
            status = await self.gateway.cancel(task_id, acting_for=acting)
            tag: str | None = None
            while status.status not in FINAL_STATUSES:  # a started answer stops within a token or two
                fresh, tag = await self.gateway.watch(task_id, tag, 5)
                status = fresh or status
            accepted = await self.gateway.regenerate(task_id, acting_for=acting, text=text)
        except (GatewayUnavailable, GatewayRejected) as exc:
            log.info("chat=%s user=%s correction of task=%s refused: %s", target.chat, user_id, task_id, exc)
            words = (
                refusal(exc, target.lang)
                if isinstance(exc, GatewayRejected)
                else t(target.lang, "gateway_down")
            )
            await self.bot.send_message(
                target.chat, words, reply_parameters=target.reply(), message_thread_id=target.thread
            )
            return
        log.info("chat=%s user=%s task=%s corrects task=%s", target.chat, user_id, accepted.task_id, task_id)
        self.deliverer.follow(accepted.task_id, target)

    async def _submit(
        self,
        user_id: int,
        send: Awaitable[tuple[ChatAccepted, bool]],
        target: Target,
        pending: Pending | None,
    ) -> None:
        try:
            accepted, replayed = await send
        except GatewayUnavailable as exc:
            log.warning("chat=%s user=%s gateway unavailable: %s", target.chat, user_id, exc)
            word = "busy" if exc.busy else "gateway_down"
            retry = None
            if pending is not None:
                retry = retry_keyboard(target.lang, Resend(token=self._remember(pending)).pack())
            await self.bot.send_message(
                target.chat,
                t(target.lang, word),
                reply_markup=retry,
                reply_parameters=target.reply(),
                message_thread_id=target.thread,
            )
            return
        except GatewayRejected as exc:
            log.info("chat=%s user=%s message refused: %s", target.chat, user_id, exc.detail)
            text = refusal(exc, target.lang)
            await self.bot.send_message(
                target.chat, text, reply_parameters=target.reply(), message_thread_id=target.thread
            )
            return
        task_id = accepted.task_id
        if replayed:
            # Telegram sent this update again (e.g. after a restart): finish the earlier task, once.
            status = await self.gateway.status(task_id)
            earlier = Target.from_meta(status.client_meta or {})
            if not status.delivered and earlier is not None:
                self.deliverer.follow(task_id, earlier)
            return
        log.info("chat=%s user=%s task=%s queued at %s", target.chat, user_id, task_id, accepted.position)
        self.deliverer.follow(task_id, target)

    async def resend(self, token: str, presser: int) -> Resent:
        """Send again the message behind a "Try again" button, if `presser` is the one who wrote it
        (in a group, anyone can press a button; it may not send a message as someone else)."""
        pending = self._pending.get(token)
        if pending is None:
            return Resent.GONE
        if pending.user_id != presser:
            return Resent.NOT_YOURS
        del self._pending[token]
        await self.ask(pending.user_id, pending.text, pending.key, pending.target)
        return Resent.SENT

    def _remember(self, pending: Pending) -> str:
        # Random: the button's data names nothing that could be guessed or built by someone else.
        token = secrets.token_urlsafe(12)
        self._pending[token] = pending
        while len(self._pending) > self._keep:
            self._pending.popitem(last=False)
        return token
