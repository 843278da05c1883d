"""A recording sent from the web page: heard by a worker process, shown in words, answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import FilePayload, Page, expect

from fakes import speech
from tests.voice.conftest import QUESTION

pytestmark = pytest.mark.slow


def test_a_recording_is_shown_in_words_and_answered(page: Page, fake_workers: Callable[..., Any]) -> None:
    fake_workers(PARTIAL_INTERVAL_SECONDS="0.05")
    expect(page.locator("#voice")).to_be_visible(timeout=10_000)
    expect(page.locator("#voice")).to_have_attribute("title", "Send a voice note (an audio file)")
    note = FilePayload(name="question.ogg", mimeType="audio/ogg", buffer=speech.speak(QUESTION))
    page.set_input_files("#voice-file", files=[note])
    asked = page.locator(".msg.user").last
    expect(asked).to_contain_text("capital", timeout=60_000)
    words = asked.inner_text().removeprefix("🎤 ").replace("✏️", "").strip()
    expect(page.locator(".msg.assistant").last).to_have_text(
        f"Answer 1 to '{words[:40]}' (saw 0 answers)", timeout=30_000
    )
    # Heard wrong? The ✏️ beside the words answers the right ones instead.
    page.once("dialog", lambda dialog: dialog.accept("What is the capital of Peru?"))
    page.get_by_role("button", name="Heard wrong? Correct the words").click()
    expect(page.locator(".msg.assistant").last).to_have_text(
        "Answer 1 to 'What is the capital of Peru?' (saw 0 answers)", timeout=30_000
    )
    expect(asked).to_have_text("🎤 What is the capital of Peru?")
    # After a reload the history shows the corrected words, not the file's name nor the misheard ones.
    page.reload()
    expect(page.locator(".msg.user")).to_have_text(["What is the capital of Peru?"], timeout=10_000)

    # Silence is told in words, not as an error code.
    quiet = FilePayload(name="quiet.ogg", mimeType="audio/ogg", buffer=speech.silence(3))
    page.set_input_files("#voice-file", files=[quiet])
    expect(page.locator(".msg.assistant.error").last).to_have_text(
        "No speech was heard in this recording.", timeout=60_000
    )
