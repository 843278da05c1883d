"""The real bot against a fake Telegram, with the real gateway (served over HTTP) and real workers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher

from bot.__main__ import run
from fakes.telegram import FakeTelegram
from shared.config import BotSettings
from tests.conftest import BOT_API_KEY, ServedGateway


class BotRunner:
    """`bot.__main__.run` in a thread with its own event loop; stop() ends it like a shutdown."""

    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dispatcher: Dispatcher | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        def on_ready(dispatcher: Dispatcher, _bot: Bot) -> None:
            self.loop = asyncio.get_running_loop()
            self.dispatcher = dispatcher
            self.ready.set()

        try:
            asyncio.run(run(self.settings, on_ready=on_ready, handle_signals=False))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self.ready.set()

    def start(self) -> BotRunner:
        self.thread.start()
        assert self.ready.wait(15), "the bot did not start"
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        if self.loop is None or self.dispatcher is None or not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.dispatcher.stop_polling(), self.loop).result(timeout=15)
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the bot did not stop"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def bot_settings(telegram: FakeTelegram, served_gateway: ServedGateway) -> BotSettings:
    return BotSettings(
        _env_file=None,
        telegram_bot_token="4242:TEST-TOKEN",
        telegram_api_base=telegram.base_url,
        gateway_url=served_gateway.url,
        bot_api_key=BOT_API_KEY,
        telegram_allow_everyone=True,
        telegram_admin_ids=[7],
        bot_edit_interval_seconds=0.3,
        bot_poll_interval_seconds=0.05,
    )


@pytest.fixture
def start_bot(bot_settings: BotSettings) -> Iterator[Callable[..., BotRunner]]:
    """Start the bot (with optional changes to its settings); every bot is stopped after the test."""
    runners: list[BotRunner] = []

    def start(**changes: Any) -> BotRunner:
        runner = BotRunner(bot_settings.model_copy(update=changes)).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()


@pytest.fixture
def worker(fake_workers: Callable[..., Any]) -> Any:
    """One worker process with the scripted model, quick but visibly streaming."""
    return fake_workers(FAKE_TOKEN_DELAY="0.01", MAX_TOKENS="4000", PARTIAL_INTERVAL_SECONDS="0.05")
