"""Plain messages: text is answered (a reply to a voice note's words corrects them); what is neither
text nor voice gets a polite "text only". Groups need a mention."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType, MessageEntityType
from aiogram.types import Message

from bot.conversation import Conversations
from bot.delivery import Deliverer, Target
from bot.texts import t
from shared.identity import telegram_message_key

PRIVATE = F.chat.type == ChatType.PRIVATE


async def addressed_to_bot(message: Message, bot: Bot) -> bool:
    """In a group: the message mentions the bot or replies to one of its messages."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    me = await bot.me()
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == me.id:
        return True
    text = message.text or message.caption or ""
    for entity in message.entities or message.caption_entities or []:
        if entity.type == MessageEntityType.MENTION:
            mention = entity.extract_from(text)
            if me.username and mention.lower() == f"@{me.username.lower()}":
                return True
    return False


async def _without_mention(message: Message, bot: Bot) -> str:
    text = message.text or ""
    me = await bot.me()
    if me.username:
        text = text.replace(f"@{me.username}", "").strip()
    return text


async def on_text(
    message: Message, bot: Bot, lang: str, conversations: Conversations, deliverer: Deliverer
) -> None:
    assert message.from_user is not None
    text = await _without_mention(message, bot)
    if not text:
        await message.answer(t(lang, "help"))
        return
    target = Target.of(message, lang)
    reply = message.reply_to_message
    corrected = deliverer.task_for_transcript(message.chat.id, reply.message_id) if reply else None
    if corrected is not None:
        # A reply to the words heard in a voice note: they are put right and answered anew.
        await conversations.correct(message.from_user.id, corrected, text, target)
        return
    key = telegram_message_key(message.chat.id, message.message_id)
    await conversations.ask(message.from_user.id, text, key, target)


async def on_other(message: Message, lang: str) -> None:
    await message.answer(t(lang, "text_only"))


def build_router() -> Router:
    """A new router with this module's handlers (routers cannot be shared between dispatchers)."""
    router = Router(name="chat")
    router.message.register(on_text, F.text & ~F.text.startswith("/"), addressed_to_bot)
    router.message.register(on_other, ~F.text, addressed_to_bot)
    return router
