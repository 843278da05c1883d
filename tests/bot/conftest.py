"""The real bot against a fake Telegram, with the real gateway (served over HTTP) and the real worker.

The worker runs in a thread of the test's process (`worker.__main__.run`, its slots, notices and
recovery, with the scripted model): a bot test needs no process of its own, and stays fast. Tests
that kill a worker or need the real model start processes (`fake_workers`, `real_worker`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher

from bot.__main__ import run
from fakes.telegram import FakeTelegram
from shared.config import BotSettings, QueueSettings
from tests.conftest import BOT_API_KEY, FOREIGN_TO_WORKERS, ServedGateway, wait_for, worker_variables
from tests.fakes import FakeChatModel
from worker.__main__ import run as run_worker
from worker.slots import SlotPool


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


class WorkerThread:
    """`worker.__main__.run` with the scripted model in a thread; stop() ends it as a second signal
    would (answers still being written stop too)."""

    def __init__(self, model: FakeChatModel) -> None:
        self.model = model
        self.pool: SlotPool | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="test-worker", daemon=True)

    def _main(self) -> None:
        def on_ready(pool: SlotPool) -> None:
            self.pool = pool

        try:
            # No `.env`: only what the test set in the environment reaches it. Each test's end
            # waits for the idle threads to see the stop: they look often.
            run_worker(model=self.model, env_file=None, on_ready=on_ready, stop_check_seconds=0.1)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def _taking_jobs(self) -> bool:
        return self.error is not None or (
            self.pool is not None and len(self.pool.workers) == self.pool.parallel
        )

    def start(self) -> WorkerThread:
        self.thread.start()
        wait_for(self._taking_jobs, timeout=30)
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop(force=True)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.fixture
def worker_thread(
    monkeypatch: pytest.MonkeyPatch, db_url: str, queue_settings: QueueSettings
) -> Iterator[Callable[..., WorkerThread]]:
    """Start the worker in this process, given its variables as `fake_workers` takes them
    (FAKE_TOKEN_DELAY and FAKE_ENDLESS shape the scripted model); it is stopped after the test."""
    started: list[WorkerThread] = []

    def start(FAKE_TOKEN_DELAY: str = "0", FAKE_ENDLESS: str = "", **settings: str) -> WorkerThread:
        # One process installs one reply service for its jobs (worker.tasks): one worker here.
        assert not started, "one worker thread per test; fake_workers starts several"
        for name in [n for n in os.environ if n.startswith(FOREIGN_TO_WORKERS)]:
            monkeypatch.delenv(name)
        for name, value in worker_variables(db_url, queue_settings, **settings).items():
            monkeypatch.setenv(name, value)
        model = FakeChatModel(token_delay=float(FAKE_TOKEN_DELAY), endless=FAKE_ENDLESS == "1")
        started.append(WorkerThread(model))
        return started[-1].start()

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def worker(worker_thread: Callable[..., WorkerThread]) -> WorkerThread:
    """The worker with the scripted model, quick but visibly streaming."""
    return worker_thread(FAKE_TOKEN_DELAY="0.01", MAX_TOKENS="4000", PARTIAL_INTERVAL_SECONDS="0.05")
