"""A person's conversations in Telegram: /chats to switch or delete, /export, and /prompt.

Buttons carry only a conversation id; the gateway checks it is the presser's (`X-Acting-For`), so a
button under someone else's list in a group does nothing.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.buttons import DeleteChat, NewConversation, SwitchChat
from bot.delivery import place
from bot.gateway import GatewayClient, GatewayRejected
from bot.texts import t
from shared.account_schemas import MAX_INSTRUCTIONS_CHARS, ConversationSummary
from shared.identity import telegram_user

log = logging.getLogger(__name__)

_BUTTON_TITLE_CHARS = 40
_OFF = {"off", "выкл", "-"}


def _title(conversation: ConversationSummary, lang: str) -> str:
    return conversation.title or t(lang, "untitled")


def _keyboard(conversations: list[ConversationSummary], lang: str) -> InlineKeyboardMarkup:
    rows = []
    for conversation in conversations:
        mark = "▶ " if conversation.current else ""
        title = _title(conversation, lang)
        if len(title) > _BUTTON_TITLE_CHARS:
            title = title[: _BUTTON_TITLE_CHARS - 1] + "…"
        label = f"{mark}{title} · {conversation.active_at:%d.%m}"
        rows.append(
            [
                InlineKeyboardButton(
                    text=label, callback_data=SwitchChat(conversation_id=conversation.conversation_id).pack()
                ),
                InlineKeyboardButton(
                    text=t(lang, "button_delete"),
                    callback_data=DeleteChat(conversation_id=conversation.conversation_id).pack(),
                ),
            ]
        )
    rows.append([InlineKeyboardButton(text=t(lang, "button_new"), callback_data=NewConversation().pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def chats(message: Message, lang: str, gateway: GatewayClient) -> None:
    assert message.from_user is not None
    listed = await gateway.conversations(telegram_user(message.from_user.id), place(message))
    if not listed:
        await message.answer(t(lang, "chats_empty"))
        return
    await message.answer(t(lang, "chats_header"), reply_markup=_keyboard(listed, lang))


async def _relist(callback: CallbackQuery, lang: str, gateway: GatewayClient) -> None:
    """Show the list again under the same message, as it is now."""
    if not isinstance(callback.message, Message):
        return
    listed = await gateway.conversations(telegram_user(callback.from_user.id), place(callback.message))
    text = t(lang, "chats_header") if listed else t(lang, "chats_empty")
    await callback.message.edit_text(text, reply_markup=_keyboard(listed, lang) if listed else None)


async def _chosen(callback: CallbackQuery, gateway: GatewayClient, wanted: int) -> ConversationSummary | None:
    """The presser's conversation the button names, if it is still in their list here."""
    if not isinstance(callback.message, Message):
        return None
    person = telegram_user(callback.from_user.id)
    listed = await gateway.conversations(person, place(callback.message), limit=100)
    return next((c for c in listed if c.conversation_id == wanted), None)


async def switch_button(
    callback: CallbackQuery, callback_data: SwitchChat, lang: str, gateway: GatewayClient
) -> None:
    chosen = await _chosen(callback, gateway, callback_data.conversation_id)
    if chosen is None:
        await callback.answer(t(lang, "chat_gone"), show_alert=True)
        return
    await gateway.activate(chosen.conversation_id, acting_for=telegram_user(callback.from_user.id))
    await callback.answer(t(lang, "chat_switched", title=_title(chosen, lang)))
    await _relist(callback, lang, gateway)


async def delete_button(
    callback: CallbackQuery, callback_data: DeleteChat, lang: str, gateway: GatewayClient
) -> None:
    chosen = await _chosen(callback, gateway, callback_data.conversation_id)
    if chosen is None:
        await callback.answer(t(lang, "chat_gone"), show_alert=True)
        return
    try:
        person = telegram_user(callback.from_user.id)
        await gateway.delete_conversation(chosen.conversation_id, acting_for=person)
    except GatewayRejected as exc:
        if exc.status != 409:
            raise
        await callback.answer(t(lang, "chat_busy"), show_alert=True)
        return
    await callback.answer(t(lang, "chat_deleted", title=_title(chosen, lang)))
    await _relist(callback, lang, gateway)


async def export(message: Message, command: CommandObject, lang: str, gateway: GatewayClient) -> None:
    """/export: the current conversation as Markdown; /export all: everything kept, as JSON."""
    assert message.from_user is not None
    user = telegram_user(message.from_user.id)
    if (command.args or "").strip().lower() in {"all", "всё", "все"}:
        data = await gateway.export_user(user)
        document = BufferedInputFile(data, filename=f"ai-assistant-{message.from_user.id}.json")
        await message.answer_document(document, caption=t(lang, "export_all_caption"))
        return
    listed = await gateway.conversations(user, place(message), limit=1)
    if not listed or not listed[0].messages:
        await message.answer(t(lang, "export_empty"))
        return
    current = listed[0]
    data = await gateway.export(current.conversation_id, lang, acting_for=user)
    document = BufferedInputFile(data, filename=f"conversation-{current.conversation_id}.md")
    await message.answer_document(document, caption=t(lang, "export_caption", title=_title(current, lang)))


async def prompt(message: Message, command: CommandObject, lang: str, gateway: GatewayClient) -> None:
    """/prompt shows the person's instructions, /prompt <text> sets them, /prompt off removes them."""
    assert message.from_user is not None
    user = telegram_user(message.from_user.id)
    text = (command.args or "").strip()
    if not text:
        current = (await gateway.settings(user)).instructions
        if current:
            await message.answer(t(lang, "prompt_show", text=current))
        else:
            await message.answer(t(lang, "prompt_none", limit=MAX_INSTRUCTIONS_CHARS))
        return
    if text.lower() in _OFF:
        await gateway.set_instructions(user, None)
        await message.answer(t(lang, "prompt_off"))
        return
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        await message.answer(t(lang, "prompt_too_long", limit=MAX_INSTRUCTIONS_CHARS))
        return
    await gateway.set_instructions(user, text)
    await message.answer(t(lang, "prompt_set"))


def build_router() -> Router:
    """A new router with this module's handlers (routers cannot be shared between dispatchers)."""
    router = Router(name="chats")
    router.message.register(chats, Command("chats"))
    router.message.register(export, Command("export"))
    router.message.register(prompt, Command("prompt"))
    router.callback_query.register(switch_button, SwitchChat.filter())
    router.callback_query.register(delete_button, DeleteChat.filter())
    return router
