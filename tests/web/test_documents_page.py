"""A document sent from the web page: read by a worker process (its reading shown), then the
questions asked beside it are answered from it, with the sources under the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import FilePayload, Page, expect

from fakes import documents
from tests.web.conftest import send

pytestmark = pytest.mark.slow


def test_a_document_is_read_and_answers_come_with_its_sources(
    page: Page, fake_workers: Callable[..., Any]
) -> None:
    fake_workers(PARTIAL_INTERVAL_SECONDS="0.05")
    expect(page.locator("#attach")).to_be_visible(timeout=10_000)
    rules = documents.pdf(["Delivery takes two working days.", "Returns are accepted within 14 days."])
    page.set_input_files(
        "#document-file", files=[FilePayload(name="rules.pdf", mimeType="application/pdf", buffer=rules)]
    )
    expect(page.locator(".msg.user").last).to_have_text("📄 rules.pdf")
    expect(page.locator(".msg.assistant").last).to_contain_text(
        "“rules.pdf” is read (2 pages)", timeout=60_000
    )
    send(page, "How many days do I have for returns?")
    answer = page.locator(".msg.assistant").last
    # The best passage first ("returns"), then the other that says "days".
    expect(answer.locator(".sources")).to_have_text(
        "📄 Sources: “rules.pdf”, p. 2; “rules.pdf”, p. 1", timeout=60_000
    )
    expect(answer).to_contain_text("Answer 1 to 'Passages from the person")
    # A file dropped on the conversation is sent the same way.
    dropped = page.evaluate_handle(
        """(text) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], "notes.md", {type: "text/markdown"}));
            return transfer;
        }""",
        "# Payment\n\nBy card or in cash.\n",
    )
    page.dispatch_event("#chat", "drop", {"dataTransfer": dropped})
    expect(page.locator(".msg.assistant").last).to_contain_text("“notes.md” is read.", timeout=60_000)
    # What cannot be read says why, in words.
    locked = documents.pdf(["secret"], password="1")
    page.set_input_files(
        "#document-file", files=[FilePayload(name="locked.pdf", mimeType="application/pdf", buffer=locked)]
    )
    expect(page.locator(".msg.assistant.error").last).to_have_text(
        "This document is protected by a password. Send it without one.", timeout=60_000
    )
