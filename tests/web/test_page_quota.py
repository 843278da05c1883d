"""The page tells a person over quota, in their language, when it starts anew."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from shared.config import GatewaySettings
from tests.web.conftest import send

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway_settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings.model_copy(update={"quota_tokens_per_day": 1})


def test_over_quota_the_page_says_when_it_starts_anew(page: Page, fake_workers: Callable[..., Any]) -> None:
    fake_workers()
    expect(page.locator("#sign-out")).to_be_visible(timeout=10_000)
    send(page, "first")
    expect(page.locator(".msg.assistant").last).to_contain_text("Answer 1 to 'first'", timeout=30_000)
    send(page, "second")
    refused = page.locator(".msg.assistant.error").last
    expect(refused).to_contain_text(
        "You have used your daily quota of 1 tokens. It starts anew at", timeout=10_000
    )
