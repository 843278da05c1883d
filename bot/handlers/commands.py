"""/new, /retry, /cancel, /mode, /stats and the admins' /status; and the buttons under answers."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageGenerationStopped,
)

from bot.access import refused_unless_admin
from bot.buttons import ModeChoice, NewConversation, Regenerate, Resend
from bot.conversation import Conversations, Resent, refusal, when
from bot.delivery import Deliverer, Target, place
from bot.gateway import GatewayClient, GatewayRejected, GatewayUnavailable
from bot.texts import language_of, t
from shared.config import BotSettings
from shared.enums import FINAL_STATUSES
from shared.identity import telegram_user
from shared.schemas import PersonaOut

log = logging.getLogger(__name__)


async def new_conversation(message: Message, lang: str, gateway: GatewayClient) -> None:
    assert message.from_user is not None
    await gateway.new_conversation(telegram_user(message.from_user.id), place(message))
    await message.answer(t(lang, "new_done"))


async def _regenerate(
    task_id: str, target: Target, gateway: GatewayClient, deliverer: Deliverer, user_id: int
) -> None:
    # Narrowed to the person asking: a button under someone else's answer (in a group) does nothing.
    accepted = await gateway.regenerate(task_id, acting_for=telegram_user(user_id))
    await gateway.note(accepted.task_id, client_meta=target.meta())
    deliverer.follow(accepted.task_id, target)


async def retry(message: Message, lang: str, gateway: GatewayClient, deliverer: Deliverer) -> None:
    assert message.from_user is not None
    latest = await gateway.latest_task(telegram_user(message.from_user.id), place(message))
    if latest is None or latest.status not in FINAL_STATUSES:
        await message.answer(t(lang, "nothing_to_retry"))
        return
    try:
        await _regenerate(latest.task_id, Target.of(message, lang), gateway, deliverer, message.from_user.id)
    except GatewayRejected as exc:  # over quota, too fast, or answered again already
        await message.answer(refusal(exc, lang))


async def cancel(message: Message, lang: str, gateway: GatewayClient) -> None:
    assert message.from_user is not None
    latest = await gateway.latest_task(telegram_user(message.from_user.id), place(message))
    if latest is None or latest.status in FINAL_STATUSES:
        await message.answer(t(lang, "nothing_to_cancel"))
        return
    await gateway.cancel(latest.task_id)
    await message.answer(t(lang, "canceling"))


async def draft_stopped(
    event: MessageGenerationStopped, gateway: GatewayClient, deliverer: Deliverer
) -> None:
    """The stop button of a streamed draft: cancel the task in the worker."""
    task_id = deliverer.task_for_draft(event.chat.id, event.draft_id)
    if task_id is not None:
        log.info("task=%s stopped from its draft", task_id)
        await gateway.cancel(task_id)


def _name(persona: PersonaOut, lang: str) -> str:
    return persona.names.get(lang) or persona.names.get("en") or persona.key


def _persona_keyboard(personas: list[PersonaOut], lang: str) -> InlineKeyboardMarkup:
    rows = [
        [InlineKeyboardButton(text=_name(persona, lang), callback_data=ModeChoice(key=persona.key).pack())]
        for persona in personas
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def mode(message: Message, lang: str, gateway: GatewayClient) -> None:
    assert message.from_user is not None
    personas = await gateway.personas()
    current = await gateway.persona(telegram_user(message.from_user.id))
    names = {p.key: _name(p, lang) for p in personas}
    await message.answer(
        t(lang, "mode_pick", current=names.get(current, current)),
        reply_markup=_persona_keyboard(personas, lang),
    )


async def mode_chosen(
    callback: CallbackQuery, callback_data: ModeChoice, lang: str, gateway: GatewayClient
) -> None:
    key = callback_data.key
    await gateway.set_persona(telegram_user(callback.from_user.id), key)
    personas = {p.key: _name(p, lang) for p in await gateway.personas()}
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(t(lang, "mode_set", name=personas.get(key, key)))


async def stats(message: Message, lang: str, gateway: GatewayClient) -> None:
    assert message.from_user is not None
    user = telegram_user(message.from_user.id)
    s = await gateway.stats(user)
    speed = (
        t(lang, "tokens_per_second", value=s.tokens_per_second) if s.tokens_per_second else t(lang, "unknown")
    )
    lines = [t(lang, "stats", speed=speed, **s.model_dump(exclude={"tokens_per_second"}))]
    quota = await gateway.quota(user)
    for key, period in (("quota_line_day", quota.day), ("quota_line_month", quota.month)):
        limit = f"{period.limit}" if period.limit is not None else t(lang, "quota_no_limit")
        line = t(lang, key, used=period.used, limit=limit)
        if period.limit is not None:
            line += " " + t(lang, "quota_resets", when=when(period.resets_at))
        lines.append(line)
    await message.answer("\n".join(lines))


async def status(message: Message, lang: str, gateway: GatewayClient, settings: BotSettings) -> None:
    if await refused_unless_admin(message, lang, settings.telegram_admin_ids):
        return
    s = await gateway.system()
    unknown = t(lang, "unknown")
    speed = s.recent_tokens_per_second
    await message.answer(
        t(
            lang,
            "status",
            queued=s.queued,
            generating=s.generating,
            workers=s.workers if s.workers is not None else unknown,
            model=f"{s.model} ({s.preset})" if s.model and s.preset else s.model or unknown,
            speed=t(lang, "tokens_per_second", value=speed) if speed else unknown,
        )
    )


async def regenerate_button(
    callback: CallbackQuery,
    callback_data: Regenerate,
    lang: str,
    gateway: GatewayClient,
    deliverer: Deliverer,
) -> None:
    task_id = callback_data.task_id
    if not isinstance(callback.message, Message):
        await callback.answer()
        return
    try:
        await _regenerate(
            task_id, Target.of(callback.message, lang), gateway, deliverer, callback.from_user.id
        )
    except GatewayRejected as exc:
        await callback.answer(
            t(lang, "not_yours") if exc.status == 404 else refusal(exc, lang), show_alert=True
        )
        return
    await callback.answer()


async def new_button(callback: CallbackQuery, lang: str, gateway: GatewayClient) -> None:
    where = place(callback.message) if isinstance(callback.message, Message) else str(callback.from_user.id)
    await gateway.new_conversation(telegram_user(callback.from_user.id), where)
    await callback.answer(t(lang, "new_done"))
    if isinstance(callback.message, Message):
        await callback.message.answer(t(lang, "new_done"))


async def resend_button(
    callback: CallbackQuery, callback_data: Resend, lang: str, conversations: Conversations
) -> None:
    resent = await conversations.resend(callback_data.token, callback.from_user.id)
    if resent is Resent.NOT_YOURS:
        await callback.answer(t(lang, "not_yours"), show_alert=True)
        return
    await callback.answer(None if resent is Resent.SENT else t(lang, "nothing_to_retry"))


async def on_error(event: ErrorEvent) -> bool:
    """Log the failure and tell the user kindly; the bot keeps running."""
    update = event.update
    log.error("update %s failed: %r", update.update_id, event.exception, exc_info=event.exception)
    callback = update.callback_query
    message = update.message or (callback.message if callback else None)
    user = update.message.from_user if update.message else (callback.from_user if callback else None)
    lang = language_of(user.language_code if user else None)
    key = "gateway_down" if isinstance(event.exception, GatewayUnavailable) else "error"
    if isinstance(message, Message):
        try:
            await message.answer(t(lang, key))
        except Exception:  # noqa: BLE001 - telling the user is best effort
            log.warning("could not tell the user about the failure")
    return True


def build_router() -> Router:
    """A new router with this module's handlers (routers cannot be shared between dispatchers)."""
    router = Router(name="commands")
    router.message.register(new_conversation, Command("new"))
    router.message.register(retry, Command("retry"))
    router.message.register(cancel, Command("cancel"))
    router.stopped_message_generation.register(draft_stopped)
    router.message.register(mode, Command("mode"))
    router.callback_query.register(mode_chosen, ModeChoice.filter())
    router.message.register(stats, Command("stats"))
    router.message.register(status, Command("status"))
    router.callback_query.register(regenerate_button, Regenerate.filter())
    router.callback_query.register(new_button, NewConversation.filter())
    router.callback_query.register(resend_button, Resend.filter())
    router.errors.register(on_error)
    return router
