"""The admins' side of access: Allow / Deny buttons, /allow, /block, /users; and everyone's /web
and /signout (an admin's reaches someone else's)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.access import AccessGate, refused_unless_admin
from bot.buttons import AccessDecision, Verdict
from bot.gateway import GatewayClient, GatewayRejected
from bot.texts import t
from shared.config import BotSettings
from shared.enums import AccessStatus
from shared.identity import telegram_id, telegram_user

log = logging.getLogger(__name__)

_MARKS = {AccessStatus.REQUESTED: "⏳", AccessStatus.ALLOWED: "✅", AccessStatus.BLOCKED: "🚫"}


async def _decide(
    bot: Bot, gateway: GatewayClient, gate: AccessGate, user_id: int, access: AccessStatus, admin: int
) -> str:
    """Record the decision, tell an allowed person, and return their name for the admin's reply."""
    result = await gateway.set_access(telegram_user(user_id), access)
    gate.forget(user_id)
    log.info("admin=%s set user=%s access to %s", admin, user_id, access)
    if access == AccessStatus.ALLOWED:
        try:
            await bot.send_message(user_id, t(gate.languages.pop(user_id, "en"), "access_granted"))
        except Exception as exc:  # noqa: BLE001 - they may have blocked the bot meanwhile
            log.info("could not tell user=%s they were let in: %r", user_id, exc)
    return result.display_name or str(user_id)


async def decision_button(
    callback: CallbackQuery,
    callback_data: AccessDecision,
    lang: str,
    bot: Bot,
    gateway: GatewayClient,
    access_gate: AccessGate,
) -> None:
    if callback.from_user.id not in access_gate.admins:
        await callback.answer(t(lang, "admins_only"), show_alert=True)
        return
    allow = callback_data.verdict is Verdict.ALLOW
    access = AccessStatus.ALLOWED if allow else AccessStatus.BLOCKED
    name = await _decide(bot, gateway, access_gate, callback_data.user_id, access, callback.from_user.id)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(t(lang, "access_allowed" if allow else "access_blocked", name=name))


async def allow_or_block(
    message: Message,
    command: CommandObject,
    lang: str,
    bot: Bot,
    gateway: GatewayClient,
    access_gate: AccessGate,
) -> None:
    if await refused_unless_admin(message, lang, access_gate.admins):
        return
    assert message.from_user is not None
    raw = (command.args or "").strip()
    if not raw.isdigit():
        await message.answer(t(lang, "access_usage", command=command.command))
        return
    allow = command.command == "allow"
    access = AccessStatus.ALLOWED if allow else AccessStatus.BLOCKED
    name = await _decide(bot, gateway, access_gate, int(raw), access, message.from_user.id)
    await message.answer(t(lang, "access_allowed" if allow else "access_blocked", name=name))


def _quota_value(raw: str) -> int | None:
    if raw in {"-", "default"}:
        return None
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


async def quota(
    message: Message, command: CommandObject, lang: str, gateway: GatewayClient, access_gate: AccessGate
) -> None:
    """/quota <id> <per day> [<per month>]: one person's token quotas ("-": the operator's default)."""
    if await refused_unless_admin(message, lang, access_gate.admins):
        return
    parts = (command.args or "").split()
    try:
        if len(parts) not in (2, 3) or not parts[0].isdigit():
            raise ValueError(parts)
        per_day = _quota_value(parts[1])
        per_month = _quota_value(parts[2]) if len(parts) == 3 else None
    except ValueError:
        await message.answer(t(lang, "quota_usage"))
        return
    try:
        await gateway.set_quota(telegram_user(int(parts[0])), per_day, per_month)
    except GatewayRejected:  # a number past what a quota may be
        await message.answer(t(lang, "quota_usage"))
        return
    default = t(lang, "default_quota")
    await message.answer(
        t(
            lang,
            "quota_set",
            id=parts[0],
            day=per_day if per_day is not None else default,
            month=per_month if per_month is not None else default,
        )
    )


async def users(message: Message, lang: str, gateway: GatewayClient, access_gate: AccessGate) -> None:
    if await refused_unless_admin(message, lang, access_gate.admins):
        return
    people = await gateway.access_list()
    if not people:
        await message.answer(t(lang, "users_empty"))
        return
    lines = [
        t(
            lang,
            "users_line",
            mark=_MARKS.get(p.access, "?") if p.access else "?",
            name=p.display_name or "—",
            id=telegram_id(p.user_id) or p.user_id,
        )
        for p in people[:50]
    ]
    await message.answer(t(lang, "users_header") + "\n".join(lines))


async def sign_out(
    message: Message, command: CommandObject, lang: str, gateway: GatewayClient, access_gate: AccessGate
) -> None:
    """/signout: end one's own web sessions and API tokens; an admin's /signout <id>: someone's."""
    assert message.from_user is not None
    raw = (command.args or "").strip()
    if not raw:
        count = await gateway.sign_out_everywhere(telegram_user(message.from_user.id))
        await message.answer(t(lang, "signed_out", count=count))
        return
    if await refused_unless_admin(message, lang, access_gate.admins):
        return
    if not raw.isdigit():
        await message.answer(t(lang, "signout_usage"))
        return
    count = await gateway.sign_out_everywhere(telegram_user(int(raw)))
    log.info("admin=%s signed user=%s out everywhere (%d)", message.from_user.id, raw, count)
    await message.answer(t(lang, "signed_out_other", id=raw, count=count))


async def web(message: Message, lang: str, gateway: GatewayClient, settings: BotSettings) -> None:
    """A one-time personal link to the web chat, continuing this private conversation."""
    assert message.from_user is not None
    if message.chat.type != ChatType.PRIVATE:
        await message.answer(t(lang, "web_private_only"))
        return
    if not settings.public_url:
        await message.answer(t(lang, "web_unavailable"))
        return
    invite = await gateway.invite(telegram_user(message.from_user.id))
    # The gateway's own link when it knows its address; the bot's setting otherwise.
    link = invite.link or f"{settings.public_url.rstrip('/')}/#invite={invite.invite}"
    expires = invite.expires_at or datetime.now(UTC)
    hours = max(1, round((expires - datetime.now(UTC)).total_seconds() / 3600))
    await message.answer(t(lang, "web_link", link=link, hours=hours))


def build_router() -> Router:
    router = Router(name="admin")
    router.callback_query.register(decision_button, AccessDecision.filter())
    router.message.register(allow_or_block, Command("allow", "block"))
    router.message.register(users, Command("users"))
    router.message.register(quota, Command("quota"))
    router.message.register(web, Command("web"))
    router.message.register(sign_out, Command("signout"))
    return router
