"""The bot follows answers with long polls: with the gateway's default pacing it is never slowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fakes.telegram import FakeTelegram
from shared.config import GatewaySettings
from tests.bot.conftest import BotRunner
from tests.conftest import API_KEY, BOT_API_KEY, ServedGateway


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    """The defaults people run with: plain polls paced, 20 reads a second per client."""
    return GatewaySettings(_env_file=None, api_key=API_KEY, bot_api_key=BOT_API_KEY)


def test_the_bot_following_many_answers_is_never_paced(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, served_gateway: ServedGateway
) -> None:
    start_bot()
    users = range(2001, 2013)
    for user in users:
        telegram.send_text(f"question of {user}", user_id=user)
    for user in users:
        telegram.last_with(user, f"Answer 1 to 'question of {user}'")
    metrics = httpx.get(f"{served_gateway.url}/metrics", headers={"X-API-Key": API_KEY}).text
    paced = dict(re.findall(r'ai_assistant_paced_requests_total\{kind="(\w+)"\} (\d+)', metrics))
    assert paced == {"poll_held": "0", "read_held": "0", "read_refused": "0", "write_refused": "0"}
