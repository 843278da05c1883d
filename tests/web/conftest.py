"""The browser the page tests share, a personal link, and sending as a person does."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import API_KEY, ROOT, ServedGateway

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `apt-get install chromium` (make test installs it on CI)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


def invite_link(served_gateway: ServedGateway, user_id: str) -> str:
    """A personal one-time link, as `make invite` or the bot's /web hands out."""
    response = httpx.post(f"{served_gateway.url}/api/users/{user_id}/invites", headers={"X-API-Key": API_KEY})
    assert response.status_code == 201
    return f"{served_gateway.url}/#invite={response.json()['invite']}"


@pytest.fixture
def page(browser: Browser, served_gateway: ServedGateway) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 800})
    opened = context.new_page()
    opened.goto(invite_link(served_gateway, "web:alice"))
    yield opened
    context.close()


def send(page: Page, text: str) -> None:
    # As a person would: the page takes one message at a time, once the last answer is complete
    # (its text can be whole a moment before the answer's end arrives).
    expect(page.locator("#send")).to_be_visible(timeout=10_000)
    page.fill("#input", text)
    page.keyboard.press("Enter")
