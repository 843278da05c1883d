"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.texts import t
from shared.config import BotSettings


async def start(message: Message, lang: str) -> None:
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t(lang, "start", name=name))


async def help_(message: Message, lang: str, settings: BotSettings) -> None:
    text = t(lang, "help")
    if message.from_user and message.from_user.id in settings.telegram_admin_ids:
        text += t(lang, "help_admin")
    await message.answer(text)


def build_router() -> Router:
    """A new router with this module's handlers (routers cannot be shared between dispatchers)."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router
