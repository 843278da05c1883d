"""The one place that builds the bot, its dispatcher and what handlers receive."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand, BotCommandScopeDefault

from bot.access import AccessGate
from bot.conversation import Conversations
from bot.delivery import Deliverer
from bot.gateway import GatewayClient
from bot.handlers import admin, chat, chats, commands, documents, start, voice
from bot.middlewares import LanguageMiddleware, RateLimitMiddleware
from bot.texts import LANGUAGES, TEXTS
from shared.config import BotSettings

COMMANDS = [
    "new",
    "chats",
    "export",
    "prompt",
    "voice",
    "docs",
    "retry",
    "cancel",
    "mode",
    "stats",
    "web",
    "signout",
    "help",
]


def build_bot(settings: BotSettings) -> Bot:
    if settings.telegram_bot_token is None:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set: get one from @BotFather and put it in .env.")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    return Bot(
        settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(link_preview_is_disabled=True),
    )


def build_dispatcher(settings: BotSettings, bot: Bot, gateway: GatewayClient) -> Dispatcher:
    deliverer = Deliverer(bot, gateway, settings)
    access = AccessGate(settings, gateway)
    dispatcher = Dispatcher(
        settings=settings,
        gateway=gateway,
        deliverer=deliverer,
        conversations=Conversations(bot, gateway, deliverer),
        access_gate=access,
    )
    for observer in (dispatcher.message, dispatcher.callback_query, dispatcher.stopped_message_generation):
        observer.outer_middleware(LanguageMiddleware())
        observer.outer_middleware(access)
    # One budget per person for messages and button presses alike.
    rate_limit = RateLimitMiddleware(settings.bot_rate_limit_messages, settings.bot_rate_limit_seconds)
    dispatcher.message.outer_middleware(rate_limit)
    dispatcher.callback_query.outer_middleware(rate_limit)
    dispatcher.include_routers(
        start.build_router(),
        admin.build_router(),
        commands.build_router(),
        chats.build_router(),
        voice.build_router(),
        documents.build_router(),
        chat.build_router(),
    )
    return dispatcher


async def publish_commands(bot: Bot) -> None:
    """The command menu, in each language the bot speaks."""
    for lang in LANGUAGES:
        described = [BotCommand(command=name, description=_describe(lang, name)) for name in COMMANDS]
        await bot.set_my_commands(
            described, scope=BotCommandScopeDefault(), language_code=None if lang == "en" else lang
        )


def _describe(lang: str, command: str) -> str:
    for line in TEXTS[lang]["help"].splitlines():
        if line.startswith(f"/{command}"):
            return line.split(":", 1)[-1].split("—", 1)[-1].strip()
    return command
