"""Documents: a file (or a photo of a page) sent is fetched from Telegram and sent to the gateway,
which has a worker read it (a photo by OCR); its progress is shown in one message ("page 12 of
40"), and once it is read, its caption (if any) is asked as the first question. /docs lists a
person's documents, each with a delete button.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.buttons import DeleteDocument
from bot.conversation import Conversations, refusal
from bot.delivery import Target
from bot.gateway import GatewayClient, GatewayRejected, GatewayUnavailable
from bot.handlers.chat import addressed_to_bot
from bot.handlers.voice import TELEGRAM_DOWNLOAD_LIMIT
from bot.texts import t
from shared.enums import TaskStatus
from shared.identity import telegram_message_key, telegram_user
from shared.schemas import DocumentOut

log = logging.getLogger(__name__)

# How often a reading's progress is looked at (one small request; a 40-page PDF takes seconds).
_PROGRESS_SECONDS = 1.0
# Past this long without an end the bot stops looking (the worker's own limit is shorter).
_LONGEST_FOLLOW_SECONDS = 900.0
_FINAL = (TaskStatus.FINISHED, TaskStatus.FAILED)
# Readings being followed: kept here so that they are not collected while they run.
_following: set[asyncio.Task[None]] = set()


def _state_text(lang: str, document: DocumentOut) -> str:
    name = document.name
    if document.status == TaskStatus.FINISHED:
        if document.pages:
            return t(lang, "document_ready_pages", name=name, pages=document.pages)
        return t(lang, "document_ready", name=name)
    if document.status == TaskStatus.FAILED:
        key = f"failed_{document.error_code}" if document.error_code else "failed_document_unreadable"
        return t(lang, key, name=name, detail=document.error or "")
    if document.pages and document.pages_read:
        return t(lang, "document_progress", name=name, page=document.pages_read, pages=document.pages)
    return t(lang, "document_reading", name=name)


async def on_document(
    message: Message, bot: Bot, lang: str, gateway: GatewayClient, conversations: Conversations
) -> None:
    assert message.from_user is not None
    if message.document is not None:
        file_id, size = message.document.file_id, message.document.file_size
        name = message.document.file_name or "document"
    else:
        # A photo of a page: its largest size, read by OCR.
        assert message.photo
        largest = message.photo[-1]
        file_id, size, name = largest.file_id, largest.file_size, t(lang, "photo_name", n=message.message_id)
    if size is not None and size > TELEGRAM_DOWNLOAD_LIMIT:
        await message.reply(t(lang, "voice_too_big"))
        return
    try:
        downloaded = await bot.download(file_id)
    except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("chat=%s document not downloaded: %s", message.chat.id, exc)
        await message.reply(t(lang, "failed_document_unreadable", name=name))
        return
    assert downloaded is not None
    target = Target.of(message, lang)
    person = telegram_user(message.from_user.id)
    try:
        sent = await gateway.send_document(person, name, downloaded.read(), target.place)
    except GatewayRejected as exc:
        await message.reply(refusal(exc, lang))
        return
    except GatewayUnavailable:
        await message.reply(t(lang, "gateway_down"))
        return
    shown = await message.reply(_state_text(lang, sent))
    log.info("chat=%s document=%s sent for reading", message.chat.id, sent.document_id)
    question = (message.caption or "").strip()
    follow = asyncio.create_task(
        _follow(bot, gateway, conversations, person, sent, shown, question, message, target)
    )
    _following.add(follow)
    follow.add_done_callback(_following.discard)


async def _follow(
    bot: Bot,
    gateway: GatewayClient,
    conversations: Conversations,
    person: str,
    document: DocumentOut,
    shown: Message,
    question: str,
    message: Message,
    target: Target,
) -> None:
    """Show the reading's progress in `shown` until it ends; then ask the caption, if there is one."""
    lang = target.lang
    said = _state_text(lang, document)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + _LONGEST_FOLLOW_SECONDS
    while document.status not in _FINAL and loop.time() < give_up:
        await asyncio.sleep(_PROGRESS_SECONDS)
        try:
            document = await gateway.document(person, document.document_id)
        except GatewayUnavailable:
            continue
        except GatewayRejected:
            return  # deleted meanwhile
        now = _state_text(lang, document)
        if now != said:
            with contextlib.suppress(TelegramBadRequest):
                await bot.edit_message_text(text=now, chat_id=shown.chat.id, message_id=shown.message_id)
            said = now
    if document.status == TaskStatus.FINISHED and question:
        assert message.from_user is not None
        key = telegram_message_key(message.chat.id, message.message_id)
        await conversations.ask(message.from_user.id, question, key, target)


async def list_documents(message: Message, lang: str, gateway: GatewayClient) -> None:
    """/docs: the person's documents, each with a button that deletes it."""
    assert message.from_user is not None
    text, markup = await _listing(lang, gateway, telegram_user(message.from_user.id))
    await message.answer(text, reply_markup=markup)


async def _listing(lang: str, gateway: GatewayClient, person: str) -> tuple[str, InlineKeyboardMarkup | None]:
    listed = await gateway.documents(person)
    if not listed:
        return t(lang, "docs_empty"), None
    lines = [t(lang, "docs_list")]
    buttons = []
    for document in listed:
        state = {TaskStatus.FINISHED: "finished", TaskStatus.FAILED: "failed"}.get(document.status, "reading")
        lines.append(t(lang, "docs_line", name=document.name, state=t(lang, f"docs_state_{state}")))
        label = t(lang, "docs_delete", name=document.name[:40])
        buttons.append(
            [
                InlineKeyboardButton(
                    text=label, callback_data=DeleteDocument(document_id=document.document_id).pack()
                )
            ]
        )
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=buttons)


async def delete_button(
    callback: CallbackQuery, callback_data: DeleteDocument, lang: str, gateway: GatewayClient
) -> None:
    person = telegram_user(callback.from_user.id)
    try:
        document = await gateway.document(person, callback_data.document_id)
        await gateway.delete_document(person, callback_data.document_id)
    except GatewayRejected:
        # Not theirs, or gone already: the same answer, so a button says nothing of others' files.
        await callback.answer(t(lang, "docs_gone"), show_alert=True)
        return
    await callback.answer(t(lang, "docs_deleted", name=document.name))
    if isinstance(callback.message, Message):
        text, markup = await _listing(lang, gateway, person)
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=markup)


def build_router() -> Router:
    """A new router with this module's handlers (routers cannot be shared between dispatchers)."""
    router = Router(name="documents")
    router.message.register(list_documents, Command("docs"))
    router.message.register(on_document, F.document | F.photo, addressed_to_bot)
    router.callback_query.register(delete_button, DeleteDocument.filter())
    return router
