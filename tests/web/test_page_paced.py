"""The page under the gateway's default pacing: a person chatting, streaming and reloading is never
held or refused (the pacing is for scripts that poll in a loop, not for our own clients)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.config import GatewaySettings
from tests.conftest import API_KEY, BOT_API_KEY, ServedGateway
from tests.web.conftest import send

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    """The defaults people run with: plain polls paced, 20 reads a second per client."""
    return GatewaySettings(_env_file=None, api_key=API_KEY, bot_api_key=BOT_API_KEY)


def _paced(served_gateway: ServedGateway) -> dict[str, str]:
    metrics = httpx.get(f"{served_gateway.url}/metrics", headers={"X-API-Key": API_KEY}).text
    return dict(re.findall(r'ai_assistant_paced_requests_total\{kind="(\w+)"\} (\d+)', metrics))


def test_the_page_is_never_paced(
    page: Page, fake_workers: Callable[..., Any], served_gateway: ServedGateway
) -> None:
    fake_workers(FAKE_TOKEN_DELAY="0.02", PARTIAL_INTERVAL_SECONDS="0.02", MAX_TOKENS="300")
    expect(page.locator("#sign-out")).to_be_visible(timeout=10_000)
    for n in range(3):
        send(page, f"question {n}")
        expect(page.locator(".msg.assistant").last).to_contain_text(f"'question {n}'", timeout=30_000)
    # A long answer streamed, the page reloaded in the middle (history, the stream again), a few times.
    send(page, "!long")
    for _ in range(3):
        expect(page.locator(".msg.assistant").last).to_contain_text("Part", timeout=30_000)
        page.reload()
    expect(page.locator(".msg.user")).to_have_count(4, timeout=10_000)
    expect(page.locator("#send")).to_be_visible(timeout=60_000)
    assert _paced(served_gateway) == {
        "poll_held": "0",
        "read_held": "0",
        "read_refused": "0",
        "write_refused": "0",
    }

    # The same person's session read in a tight loop, as a script would: now the pacing acts.
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    with httpx.Client(base_url=served_gateway.url, cookies=cookies) as script:
        codes = {script.get("/api/me").status_code for _ in range(80)}
    paced = _paced(served_gateway)
    assert codes <= {200, 429}
    assert int(paced["read_held"]) + int(paced["read_refused"]) > 0
