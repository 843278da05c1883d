"""The web chat page in headless Chromium: send, watch the answer stream, stop, reload, new chat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from api.services import credentials
from shared.db import Database
from shared.models import CredentialKind
from tests.conftest import API_KEY, ServedGateway
from tests.web.conftest import SCREENSHOTS, invite_link, send

pytestmark = pytest.mark.slow


def test_chat_streams_stops_and_survives_a_reload(
    page: Page, fake_workers: Callable[..., Any], served_gateway: ServedGateway
) -> None:
    fake_workers(FAKE_TOKEN_DELAY="0.05", PARTIAL_INTERVAL_SECONDS="0.05", MAX_TOKENS="400")
    assert "#invite" not in page.url  # the one-time secret leaves the address bar at once
    expect(page.locator("#sign-out")).to_be_visible(timeout=10_000)
    # The session is in an HttpOnly cookie: no script on the page can read or copy it.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length") == 0

    send(page, "hello page")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_text("Answer 1 to 'hello page' (saw 0 answers)", timeout=30_000)
    expect(page.locator(".msg.user")).to_have_text(["hello page"])

    # A long answer: watch it grow, then stop it.
    send(page, "!long")
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
    send(page, "fresh")
    expect(page.locator(".msg.assistant").last).to_have_text(
        "Answer 1 to 'fresh' (saw 0 answers)", timeout=30_000
    )


def test_a_link_opens_once_and_signing_out_ends_the_session(
    browser: Browser, served_gateway: ServedGateway
) -> None:
    link = invite_link(served_gateway, "web:bob")
    first = browser.new_context(locale="ru-RU")
    page = first.new_page()
    page.goto(link)
    expect(page.locator("#composer")).to_be_visible(timeout=10_000)
    expect(page.locator("#input")).to_have_attribute("placeholder", "Напишите сообщение…")
    (cookie,) = first.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # The same link in another browser: already used.
    second = browser.new_context(locale="en-US")
    other = second.new_page()
    other.goto(link)
    expect(other.locator(".msg.error")).to_contain_text("already used", timeout=10_000)
    expect(other.locator("#composer")).to_be_hidden()

    # Signing out forgets the session on the server: a copy of the cookie no longer opens anything.
    page.click("#sign-out")
    expect(page.locator("#composer")).to_be_hidden(timeout=10_000)
    copied = {cookie["name"]: cookie["value"]}
    assert httpx.get(f"{served_gateway.url}/api/me", cookies=copied).status_code == 401
    page.reload()
    expect(page.locator(".msg.error")).to_contain_text("личная ссылка", timeout=10_000)
    first.close()
    second.close()


def test_a_person_sees_where_they_are_signed_in_and_revokes_pages_and_tokens(
    browser: Browser, served_gateway: ServedGateway, db: Database
) -> None:
    token, _ = credentials.issue(db, "web:dave", CredentialKind.API, None, label="laptop")
    phone = browser.new_context(locale="en-US", viewport={"width": 390, "height": 800})
    laptop = browser.new_context(locale="en-US")
    page, other = phone.new_page(), laptop.new_page()
    for opened in (page, other):
        opened.goto(invite_link(served_gateway, "web:dave"))
        expect(opened.locator("#composer")).to_be_visible(timeout=10_000)

    page.click("#menu")
    page.click("#devices summary")
    held = page.locator("#credentials li")
    expect(held).to_have_count(3, timeout=10_000)
    expect(held.filter(has_text="This page")).to_have_count(1)
    expect(held.filter(has_text="A web page")).to_have_count(1)
    expect(held.filter(has_text="API token “laptop”")).to_have_count(1)

    # The token, then the other page: each stops at once, and the list shrinks.
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{served_gateway.url}/api/me", headers=bearer).status_code == 200
    held.filter(has_text="API token").locator(".tool").click()
    expect(held).to_have_count(2, timeout=10_000)
    assert httpx.get(f"{served_gateway.url}/api/me", headers=bearer).status_code == 401
    held.filter(has_text="A web page").locator(".tool").click()
    expect(held).to_have_count(1, timeout=10_000)
    other.reload()
    expect(other.locator(".msg.error")).to_contain_text("personal link", timeout=10_000)
    # And this page itself: signed out here too.
    held.filter(has_text="This page").locator(".tool").click()
    expect(page.locator("#composer")).to_be_hidden(timeout=10_000)
    phone.close()
    laptop.close()


def test_a_telegram_user_continues_their_conversation_on_the_page(
    browser: Browser, served_gateway: ServedGateway, fake_workers: Callable[..., Any]
) -> None:
    fake_workers()
    operator = {"X-API-Key": API_KEY}
    sent = httpx.post(
        f"{served_gateway.url}/api/chat",
        json={"user_id": "tg:4242", "chat_id": "4242", "text": "asked in Telegram"},
        headers=operator,
    )
    assert sent.status_code == 202
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(invite_link(served_gateway, "tg:4242"))
    expect(page.locator(".msg.user")).to_have_text(["asked in Telegram"], timeout=15_000)
    expect(page.locator(".msg.assistant").first).to_contain_text(
        "Answer 1 to 'asked in Telegram'", timeout=30_000
    )
    send(page, "and on the web")
    expect(page.locator(".msg.assistant").last).to_have_text(
        "Answer 2 to 'and on the web' (saw 1 answers)", timeout=30_000
    )
    context.close()


def test_the_page_is_served_with_a_strict_policy(served_gateway: ServedGateway) -> None:
    response = httpx.get(served_gateway.url + "/")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert httpx.get(served_gateway.url + "/static/app.js").status_code == 200
    # Every response carries the headers, not only the page: the page's file and the API too.
    for path in ("/static/index.html", "/api/me", "/health", "/openapi.json"):
        headers = httpx.get(served_gateway.url + path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    # No /docs: its page would load scripts from a CDN on the origin that holds sessions.
    assert httpx.get(served_gateway.url + "/docs", headers={"X-API-Key": API_KEY}).status_code == 404


def test_conversations_in_the_menu_switch_and_export(
    page: Page, fake_workers: Callable[..., Any], served_gateway: ServedGateway
) -> None:
    fake_workers()
    expect(page.locator("#sign-out")).to_be_visible(timeout=10_000)
    send(page, "about volcanoes")
    expect(page.locator(".msg.assistant").last).to_have_text(
        "Answer 1 to 'about volcanoes' (saw 0 answers)", timeout=30_000
    )
    # A person who types at once, while the new chat is still being made on the server: the
    # message waits for it, and goes to the new chat, not the old one.
    held: list[Route] = []
    page.route("**/api/conversations", lambda route: held.append(route))
    page.click("#new-chat")
    send(page, "about the sea")
    expect(page.locator(".msg.user")).to_have_text(["about volcanoes"])
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/api/conversations")
    expect(page.locator(".msg.user")).to_have_text(["about the sea"], timeout=10_000)
    expect(page.locator(".msg.assistant").last).to_contain_text("'about the sea'", timeout=30_000)

    # On a phone the list is a menu: closed until asked for.
    expect(page.locator("#sidebar")).to_be_hidden()
    page.click("#menu")
    items = page.locator("#chats li")
    expect(items).to_have_count(2, timeout=10_000)
    expect(items.locator(".open")).to_have_text(["about the sea", "about volcanoes"])
    expect(page.locator("#chats li.current .open")).to_have_text("about the sea")

    # Back to the first conversation: its history, and the next answer sees it.
    items.nth(1).locator(".open").click()
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(page.locator(".msg.user")).to_have_text(["about volcanoes"], timeout=10_000)
    send(page, "more please")
    expect(page.locator(".msg.assistant").last).to_have_text(
        "Answer 2 to 'more please' (saw 1 answers)", timeout=30_000
    )

    # Its export, downloaded as a person would: the same exchanges.
    page.click("#menu")
    expect(page.locator("#chats li.current .open")).to_have_text("about volcanoes")
    with page.expect_download() as download:
        page.locator("#chats li.current a.export").click()
    text = download.value.path().read_text(encoding="utf-8")
    assert text.startswith("# about volcanoes\n")
    assert "Answer 1 to 'about volcanoes'" in text and "Answer 2 to 'more please' (saw 1 answers)" in text
    assert "about the sea" not in text


def test_own_instructions_set_on_the_page_reach_the_model(
    page: Page, fake_workers: Callable[..., Any]
) -> None:
    fake_workers()
    expect(page.locator("#sign-out")).to_be_visible(timeout=10_000)
    page.click("#menu")
    page.click("#settings summary")
    page.fill("#instructions", "Answer like a pirate.")
    page.click("#save-instructions")
    expect(page.locator("#instructions-saved")).to_be_visible(timeout=10_000)
    page.click("#menu")
    send(page, "!system")
    # The operator's instructions stay first; the person's follow them.
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text("System:", timeout=30_000)
    assert answer.inner_text().endswith("\n\nAnswer like a pirate.")
    page.reload()
    page.click("#menu")
    page.click("#settings summary")
    expect(page.locator("#instructions")).to_have_value("Answer like a pirate.")
