"""The bot in the gateway's process: started again when it fails, and the gateway keeps serving."""

from __future__ import annotations

import asyncio

import pytest

from shared.config import BotSettings
from stack import gateway_and_bot
from stack.supervisor import Backoff


def test_a_failing_bot_is_started_again_after_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[bool] = []
    pauses: list[float] = []

    async def run(_settings: BotSettings, handle_signals: bool = True) -> None:
        starts.append(handle_signals)
        if len(starts) < 3:
            raise RuntimeError("Telegram is unreachable")
        await asyncio.Event().wait()  # the third start keeps running until cancelled

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("bot.__main__.run", run)
    monkeypatch.setattr(gateway_and_bot, "_pause", pause)

    async def scenario() -> None:
        task = asyncio.create_task(gateway_and_bot.keep_bot_running(BotSettings(_env_file=None)))
        while len(starts) < 3:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    # Signals are the gateway's (uvicorn stops both); each failure waits longer than the last.
    assert starts == [False, False, False]
    assert pauses == [1.0, 2.0]


def test_the_pause_doubles_with_each_quick_failure_and_starts_over_after_a_run_that_lasted() -> None:
    backoff = Backoff()
    assert [backoff.after(ran_for=1) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after(ran_for=120) == 1
    assert backoff.after(ran_for=1) == 2
