"""Voice notes in Telegram, end to end: the fake Bot API serves the file (getFile and the
download), the real bot sends it to the gateway, a worker process hears it with the default
speech model, and the words and the answer come back in the chat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.quality import language_of
from fakes import speech
from fakes.telegram import FakeTelegram
from tests.bot.conftest import BotRunner
from tests.voice.conftest import QUESTION, RUSSIAN_QUESTION

USER = 1001


@pytest.fixture(scope="module")
def spoken() -> bytes:
    if not speech.espeak_available():
        pytest.fail("espeak-ng is missing: apt-get install espeak-ng (make test does)")
    return speech.speak(QUESTION)


def test_a_voice_note_is_shown_in_words_answered_and_can_be_corrected(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, spoken: bytes
) -> None:
    start_bot()
    note = telegram.send_voice(spoken, duration=3, user_id=USER)
    shown = telegram.last_with(USER, "🎤 ", timeout=60)
    words = shown.text.removeprefix("🎤 ")
    assert "capital" in words.lower(), words
    assert shown.reply_to == note
    answer = telegram.last_with(USER, "Answer 1 to", timeout=60)
    assert answer.text == f"Answer 1 to '{words[:40]}' (saw 0 answers)"
    assert [call["path"] for call in telegram.called("download")] == [f"voice/file-{note}.oga"]
    assert telegram.called("getFile")[0]["file_id"] == f"file-{note}"

    # Heard wrong? A reply to the words puts them right, and that is answered instead.
    telegram.send_text(
        "What is the capital of Peru?",
        user_id=USER,
        reply_to_message={
            "message_id": shown.message_id,
            "date": 0,
            "chat": {"id": USER, "type": "private"},
            "from": {"id": 4242, "is_bot": True, "first_name": "Bot"},
            "text": shown.text,
        },
    )
    corrected = telegram.last_with(USER, "Peru", timeout=60)
    assert corrected.text == "Answer 1 to 'What is the capital of Peru?' (saw 0 answers)"
    # The next message sees the corrected exchange, not the misheard one.
    telegram.send_text("and of Chile?", user_id=USER)
    assert telegram.last_with(USER, "Answer 2 to 'and of Chile?' (saw 1 answers)", timeout=60)


def test_notes_that_cannot_be_answered_get_their_own_words(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, spoken: bytes
) -> None:
    start_bot()
    telegram.send_voice(speech.corrupt(spoken), duration=3, user_id=11)
    assert telegram.last_with(11, "could not play this voice note", timeout=60)
    telegram.send_voice(speech.silence(3), duration=3, user_id=12, kind="audio")
    assert telegram.last_with(12, "heard no speech", timeout=60)
    # Telegram says how long a note is: one over STT_MAX_SECONDS is refused before it is queued.
    telegram.send_voice(spoken, duration=400, user_id=13, kind="video_note")
    assert telegram.last_with(13, "at most 300 seconds", timeout=30)
    telegram.send_voice(spoken, duration=3, user_id=15, expired=True)
    assert telegram.last_with(15, "could not play this voice note", timeout=30)
    big = telegram.send_voice(spoken, duration=3, user_id=14, size=25 * 1024 * 1024)
    assert telegram.last_with(14, "at most 20 MB", timeout=30)
    assert f"file-{big}" not in {call["file_id"] for call in telegram.called("getFile")}  # never fetched


def test_voice_notes_count_against_the_rate_limit_and_the_language_is_a_setting(
    telegram: FakeTelegram,
    start_bot: Callable[..., BotRunner],
    worker_thread: Callable[..., Any],
    spoken: bytes,
) -> None:
    worker_thread(STT_MODEL="tiny.en", FAKE_TOKEN_DELAY="0.01")  # the English-only option
    start_bot(bot_rate_limit_messages=2, bot_rate_limit_seconds=600)
    telegram.send_text("/voice ru", user_id=USER, language="ru")
    assert telegram.last_with(USER, "Язык ваших голосовых: ru")
    telegram.send_voice(spoken, duration=3, user_id=USER, language="ru")
    # tiny.en knows English only: asked for Russian, it says so in the person's language.
    assert telegram.last_with(USER, "не знает язык", timeout=60)
    telegram.send_voice(spoken, duration=3, user_id=USER, language="ru")
    assert telegram.last_with(USER, "Вы пишете быстрее", timeout=30)


@pytest.mark.slow
def test_a_russian_voice_note_is_answered_in_russian_by_the_real_models(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], real_worker: Callable[..., Any]
) -> None:
    """Out of the box: the default speech model hears Russian as Russian (/voice auto), and the
    default chat model answers it, in Russian."""
    if not speech.russian_available():
        pytest.fail(
            "Festival's Russian voice is missing: apt-get install festival festvox-ru (make test does)"
        )
    real_worker(MAX_TOKENS="64", TEMPERATURE="0")
    start_bot()
    note = telegram.send_voice(
        speech.speak(RUSSIAN_QUESTION, language="ru"), duration=2, user_id=USER, language="ru"
    )

    shown = telegram.last_with(USER, "🎤 ", timeout=120)
    answer = telegram.wait_for(lambda: [m for m in telegram.chat(USER) if m.reply_markup], timeout=180)[0]

    assert shown.reply_to == note and "франц" in shown.text.lower(), shown.text
    assert "париж" in answer.text.lower(), answer.text
    assert language_of(answer.text) == "ru", answer.text
