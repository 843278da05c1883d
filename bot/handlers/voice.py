"""Voice notes (voice, audio files, round videos): fetched from Telegram, sent to the gateway, heard
by a worker; the words are shown ("🎤 …") and answered as if typed. /voice sets their language."""

from __future__ import annotations

import logging

import aiohttp
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.conversation import Conversations
from bot.delivery import Target
from bot.gateway import GatewayClient
from bot.handlers.chat import addressed_to_bot
from bot.texts import t
from shared.identity import telegram_message_key, telegram_user

log = logging.getLogger(__name__)

# Telegram's getFile serves bots files up to 20 MB; a larger one cannot even be fetched.
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
_AUTO = {"auto", "detect", "авто"}


async def on_voice(message: Message, bot: Bot, lang: str, conversations: Conversations) -> None:
    assert message.from_user is not None
    media = message.voice or message.audio or message.video_note
    assert media is not None  # the filter lets nothing else in
    if media.file_size is not None and media.file_size > TELEGRAM_DOWNLOAD_LIMIT:
        await message.reply(t(lang, "voice_too_big"))
        return
    try:
        downloaded = await bot.download(media.file_id)
    except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:  # the file, or the way to it
        log.warning("chat=%s voice note not downloaded: %s", message.chat.id, exc)
        await message.reply(t(lang, "failed_voice_unreadable"))
        return
    assert downloaded is not None
    audio = downloaded.read()
    key = telegram_message_key(message.chat.id, message.message_id)
    await conversations.ask_voice(message.from_user.id, audio, media.duration, key, Target.of(message, lang))


async def voice_language(message: Message, command: CommandObject, lang: str, gateway: GatewayClient) -> None:
    """/voice shows the language of the person's voice notes; /voice ru sets it; /voice auto detects."""
    assert message.from_user is not None
    user = telegram_user(message.from_user.id)
    choice = (command.args or "").strip().lower()
    if not choice:
        current = (await gateway.settings(user)).speech_language
    elif choice in _AUTO:
        current = (await gateway.set_speech_language(user, None)).speech_language
    elif choice.isascii() and choice.isalpha() and len(choice) in (2, 3):
        current = (await gateway.set_speech_language(user, choice)).speech_language
    else:
        await message.answer(t(lang, "voice_language_bad"))
        return
    await message.answer(t(lang, "voice_language", language=current or t(lang, "voice_language_auto")))


def build_router() -> Router:
    """A new router with this module's handlers (routers cannot be shared between dispatchers)."""
    router = Router(name="voice")
    router.message.register(voice_language, Command("voice"))
    router.message.register(on_voice, F.voice | F.audio | F.video_note, addressed_to_bot)
    return router
