"""The bot follows an answer by long polls: it hears of each change at once, without asking often."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakes.telegram import FakeTelegram
from shared.config import DatabaseSettings, GatewaySettings, QueueSettings
from tests.bot.conftest import BotRunner
from tests.conftest import ServedGateway

USER = 1001


class StatusRequests:
    """Counts the requests for a task's status that reach the gateway (an ASGI wrapper)."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, app: Any) -> Any:
        async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/api/status/"):
                self.count += 1
            await app(scope, receive, send)

        return counted


@pytest.fixture
def status_requests() -> StatusRequests:
    return StatusRequests()


@pytest.fixture
def served_gateway(
    status_requests: StatusRequests,
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
) -> Iterator[ServedGateway]:
    served = ServedGateway(
        gateway_settings, DatabaseSettings(_env_file=None, database_url=db_url), queue_settings
    )
    served.server.config.app = status_requests.wrap(served.server.config.app)
    served.start()
    yield served
    served.stop()


def test_a_slow_answer_costs_a_request_per_change_not_per_poll_interval(
    telegram: FakeTelegram,
    start_bot: Callable[..., BotRunner],
    worker_thread: Callable[..., Any],
    status_requests: StatusRequests,
) -> None:
    # About 14 words, one every 0.25 s, published as they come: some 3.5 s of changing text.
    worker_thread(FAKE_TOKEN_DELAY="0.25", PARTIAL_INTERVAL_SECONDS="0.25")
    bot = start_bot()
    started = time.monotonic()
    telegram.send_text("tell me about the sea and the sky", user_id=USER)

    answer = telegram.last_with(USER, "(saw 0 answers)", timeout=60)
    seconds = time.monotonic() - started

    assert answer.text == "Answer 1 to 'tell me about the sea and the sky' (saw 0 answers)"
    # Polling every bot_poll_interval_seconds (0.05 here) would have asked some 70 times.
    polls = seconds / bot.settings.bot_poll_interval_seconds
    assert status_requests.count < polls / 2, (status_requests.count, seconds)
