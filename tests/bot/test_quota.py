"""A person over their token quota is told when it starts anew, while another person is answered."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fakes.telegram import FakeTelegram
from shared.config import GatewaySettings
from tests.bot.conftest import BotRunner


@pytest.fixture
def gateway_settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings.model_copy(update={"quota_tokens_per_day": 1})


def test_over_quota_gets_the_reset_time_while_another_is_answered(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot(telegram_admin_ids=[3003])
    telegram.send_text("first", user_id=2001)
    telegram.last_with(2001, "Answer 1 to 'first'")
    telegram.send_text("second", user_id=2001, language="ru")
    refused = telegram.last_with(2001, "лимит").text
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert f"{tomorrow:%Y-%m-%d} 00:00 UTC" in refused and "дневной" in refused

    # Answering again is refused the same way (not with the gateway's English sentence).
    telegram.send_text("/retry", user_id=2001, language="ru")
    telegram.wait_for(lambda: sum("дневной лимит" in m.text for m in telegram.chat(2001)) == 2)

    telegram.send_text("hello", user_id=2002)
    telegram.last_with(2002, "Answer 1 to 'hello'")

    telegram.send_text("/stats", user_id=2001)
    stats = telegram.last_with(2001, "Today:").text
    used = int(re.search(r"Today: (\d+) tokens of 1", stats).group(1))  # type: ignore[union-attr]
    assert used > 1 and f"starts anew at {tomorrow:%Y-%m-%d} 00:00 UTC" in stats

    # An admin lifts it for this person.
    telegram.send_text("/quota 2001 100000", user_id=3003)
    telegram.last_with(3003, "Quotas of 2001: 100000 a day")
    telegram.send_text("third", user_id=2001)
    telegram.last_with(2001, "Answer 2 to 'third'")
