"""Bot entry point: `python -m bot` (what `make run` starts once TELEGRAM_BOT_TOKEN is set)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiogram import Bot, Dispatcher

from bot.app import build_bot, build_dispatcher, publish_commands
from bot.delivery import Deliverer
from bot.gateway import GatewayClient, GatewayUnavailable
from shared.config import BotSettings
from shared.logging import configure_logging

log = logging.getLogger("bot")


async def run(
    settings: BotSettings,
    on_ready: Callable[[Dispatcher, Bot], None] | None = None,
    handle_signals: bool = True,
) -> None:
    """Poll Telegram until stopped, first delivering answers owed from before a restart."""
    key = settings.bot_api_key or settings.api_key
    if key is None:
        raise RuntimeError("BOT_API_KEY is not set: the bot needs its key at the gateway (see .env).")
    if settings.bot_api_key is None:
        log.warning("BOT_API_KEY is not set: the bot uses the operator's API_KEY, which can do anything")
    if not (
        settings.telegram_allow_everyone or settings.telegram_admin_ids or settings.telegram_allowed_users
    ):
        log.warning(
            "no TELEGRAM_ADMIN_IDS: nobody can let new people in (or set TELEGRAM_ALLOW_EVERYONE=true)"
        )
    gateway = GatewayClient(settings.gateway_url, key.get_secret_value())
    bot = build_bot(settings)
    dispatcher = build_dispatcher(settings, bot, gateway)
    deliverer: Deliverer = dispatcher["deliverer"]

    async def on_startup() -> None:
        await publish_commands(bot)
        try:
            owed = await deliverer.resume()
            if owed:
                log.info("resuming %d answer(s) owed from before the restart", owed)
        except GatewayUnavailable as exc:
            log.warning("could not ask the gateway for owed answers yet: %s", exc)

    async def on_shutdown() -> None:
        await deliverer.shutdown()
        await gateway.aclose()

    dispatcher.startup.register(on_startup)
    dispatcher.shutdown.register(on_shutdown)
    me = await bot.me()
    log.info("bot @%s starting", me.username)
    if on_ready is not None:
        on_ready(dispatcher, bot)
    # Updates are handled one at a time, in order: two quick messages from one user must reach the
    # gateway in the order they were written. Handlers only hand work over, so this costs little.
    await dispatcher.start_polling(
        bot,
        allowed_updates=dispatcher.resolve_used_update_types(),
        handle_signals=handle_signals,
        handle_as_tasks=False,
    )


def main() -> None:
    configure_logging()
    try:
        asyncio.run(run(BotSettings()))
    except RuntimeError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
