"""The web chat page in headless Chromium: send, watch the answer stream, stop, reload, new chat."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import API_KEY, ROOT, ServedGateway

pytestmark = pytest.mark.slow
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


@pytest.fixture
def page(browser: Browser, served_gateway: ServedGateway) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 800})
    opened = context.new_page()
    opened.goto(f"{served_gateway.url}/#key={API_KEY}")
    yield opened
    context.close()


def _send(page: Page, text: str) -> None:
    # As a person would: the page takes one message at a time, once the last answer is complete
    # (its text can be whole a moment before the answer's end arrives).
    expect(page.locator("#send")).to_be_visible(timeout=10_000)
    page.fill("#input", text)
    page.keyboard.press("Enter")


def test_chat_streams_stops_and_survives_a_reload(
    page: Page, fake_workers: Callable[..., Any], served_gateway: ServedGateway
) -> None:
    fake_workers(FAKE_TOKEN_DELAY="0.05", PARTIAL_INTERVAL_SECONDS="0.05", MAX_TOKENS="400")
    assert "#key" not in page.url  # the key leaves the address bar at once

    _send(page, "hello page")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_text("Answer 1 to 'hello page' (saw 0 answers)", timeout=30_000)
    expect(page.locator(".msg.user")).to_have_text(["hello page"])

    # A long answer: watch it grow, then stop it.
    _send(page, "!long")
    growing = page.locator(".msg.assistant").last
    expect(growing).to_contain_text("Part 1", timeout=30_000)
    first_length = len(growing.inner_text())
    expect(growing).not_to_have_text(growing.inner_text(), timeout=10_000)
    assert len(growing.inner_text()) > first_length
    page.click("#stop")
    expect(growing).to_contain_text("Stopped.", timeout=10_000)
    expect(page.locator("#send")).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "web-chat.png"), full_page=True)

    # History is kept across a reload.
    page.reload()
    expect(page.locator(".msg.user")).to_have_text(["hello page", "!long"], timeout=10_000)
    expect(page.locator(".msg.assistant").first).to_have_text("Answer 1 to 'hello page' (saw 0 answers)")

    # New chat: an empty page, and the next answer sees no history.
    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)
    _send(page, "fresh")
    expect(page.locator(".msg.assistant").last).to_have_text(
        "Answer 1 to 'fresh' (saw 0 answers)", timeout=30_000
    )


def test_the_page_asks_for_the_key_and_speaks_russian(
    browser: Browser, served_gateway: ServedGateway
) -> None:
    context = browser.new_context(locale="ru-RU")
    page = context.new_page()
    page.goto(served_gateway.url)
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#key-form label")).to_contain_text("ключ API")
    page.fill("#key-input", "not-the-key-at-all")
    page.click("#key-form button")
    expect(page.locator(".msg.error")).to_contain_text("Ключ API не подошёл", timeout=10_000)
    page.fill("#key-input", API_KEY)
    page.click("#key-form button")
    expect(page.locator("#composer")).to_be_visible()
    expect(page.locator("#input")).to_have_attribute("placeholder", "Напишите сообщение…")
    assert page.evaluate("localStorage.getItem('apiKey')") == API_KEY
    context.close()


def test_the_page_is_served_with_a_strict_policy(served_gateway: ServedGateway) -> None:
    response = httpx.get(served_gateway.url + "/")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert httpx.get(served_gateway.url + "/static/app.js").status_code == 200
