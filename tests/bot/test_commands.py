"""Bot commands and buttons, and a bot restart while an answer is being written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from fakes.telegram import FakeTelegram
from shared.db import Database
from shared.models import Task
from tests.bot.conftest import BotRunner
from tests.conftest import API_KEY, ServedGateway

USER = 1001


def _count(telegram: FakeTelegram, chat: int, fragment: str) -> int:
    return sum(fragment in m.text for m in telegram.chat(chat))


def test_new_starts_a_fresh_conversation(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_text("one", user_id=USER)
    telegram.last_with(USER, "Answer 1 to 'one'")
    telegram.send_text("/new", user_id=USER)
    telegram.last_with(USER, "New conversation")
    telegram.send_text("two", user_id=USER)
    assert telegram.last_with(USER, "to 'two'").text == "Answer 1 to 'two' (saw 0 answers)"


def test_new_button_and_regenerate_button(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_text("first", user_id=USER)
    telegram.send_text("second", user_id=USER)
    answer = telegram.last_with(USER, "Answer 2 to 'second'")
    regen = answer.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]

    telegram.press(regen, answer)
    telegram.wait_for(lambda: _count(telegram, USER, "Answer 2 to 'second' (saw 1 answers)") == 2)
    telegram.press("new", answer)
    telegram.last_with(USER, "New conversation")
    telegram.send_text("third", user_id=USER)
    assert telegram.last_with(USER, "to 'third'").text == "Answer 1 to 'third' (saw 0 answers)"


def test_retry_regenerates_the_last_answer(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_text("/retry", user_id=USER)
    telegram.last_with(USER, "no answer to write again")
    telegram.send_text("question", user_id=USER)
    telegram.last_with(USER, "Answer 1 to 'question'")
    telegram.send_text("/retry", user_id=USER)
    # The same turn answered again: the replaced answer is not part of the history it sees.
    telegram.wait_for(lambda: _count(telegram, USER, "Answer 1 to 'question' (saw 0 answers)") == 2)
    assert _count(telegram, USER, "saw 1 answers") == 0


def test_cancel_stops_the_answer_in_the_worker(
    telegram: FakeTelegram,
    start_bot: Callable[..., BotRunner],
    worker_thread: Callable[..., Any],
    served_gateway: ServedGateway,
) -> None:
    worker_thread(
        FAKE_TOKEN_DELAY="0.05", FAKE_ENDLESS="1", MAX_TOKENS="100000", PARTIAL_INTERVAL_SECONDS="0.05"
    )
    start_bot()
    telegram.send_text("/cancel", user_id=USER)
    telegram.last_with(USER, "Nothing is being written")
    asked = telegram.send_text("go on forever", user_id=USER)
    telegram.wait_for(lambda: any("more" in d for d in telegram.drafts.get((USER, asked), [])))

    telegram.send_text("/cancel", user_id=USER)

    stopped = telegram.last_with(USER, "⏹ Stopped.")
    assert stopped.text.startswith("Answer 1 to 'go on forever'")
    latest = httpx.get(
        f"{served_gateway.url}/api/users/tg:{USER}/latest-task",
        params={"chat_id": str(USER)},
        headers={"X-API-Key": API_KEY},
    ).json()
    assert latest["status"] == "canceled"


def test_the_draft_stop_button_cancels(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker_thread: Callable[..., Any]
) -> None:
    worker_thread(
        FAKE_TOKEN_DELAY="0.05", FAKE_ENDLESS="1", MAX_TOKENS="100000", PARTIAL_INTERVAL_SECONDS="0.05"
    )
    start_bot()
    asked = telegram.send_text("write forever", user_id=USER)
    telegram.wait_for(lambda: any("more" in d for d in telegram.drafts.get((USER, asked), [])))
    assert all(p.get("can_stop") in ("true", "True", True) for p in telegram.called("sendMessageDraft"))

    telegram.push("stopped_message_generation", {"chat": {"id": USER, "type": "private"}, "draft_id": asked})

    assert telegram.last_with(USER, "⏹ Stopped.").text.startswith("Answer 1 to 'write forever'")


def test_mode_picks_a_persona(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], served_gateway: ServedGateway
) -> None:
    start_bot()
    telegram.send_text("/mode", user_id=USER, language="ru")
    menu = telegram.last_with(USER, "Как мне отвечать?")
    buttons = {b["text"]: b["callback_data"] for row in menu.reply_markup["inline_keyboard"] for b in row}  # type: ignore[index]
    assert "Учитель" in buttons and "Программист" in buttons

    telegram.press(buttons["Учитель"], menu, user_id=USER, language="ru")

    assert telegram.last_with(USER, "Режим: Учитель").message_id == menu.message_id
    settings = httpx.get(f"{served_gateway.url}/api/users/tg:{USER}/settings", headers={"X-API-Key": API_KEY})
    assert settings.json() == {"persona": "teacher", "instructions": None, "speech_language": None}


def test_stats_and_admin_status(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_text("count me", user_id=USER)
    telegram.last_with(USER, "Answer 1 to 'count me'")
    telegram.send_text("/stats", user_id=USER)
    stats = telegram.last_with(USER, "Your usage").text
    assert "Messages: 1" in stats and "Answers: 1" in stats and "tokens/s" in stats

    telegram.send_text("/status", user_id=USER)
    telegram.last_with(USER, "for the assistant's admins")
    telegram.send_text("/status", user_id=7)
    status = telegram.last_with(7, "Service").text
    assert "Queued: 0" in status and "Workers: 1" in status and "Model: fake-model" in status


def test_a_bot_restart_delivers_the_answer_once(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker_thread: Callable[..., Any]
) -> None:
    worker_thread(FAKE_TOKEN_DELAY="0.1", MAX_TOKENS="1000", PARTIAL_INTERVAL_SECONDS="0.05")
    first = start_bot()
    asked = telegram.send_text("slow answer please", user_id=USER)
    telegram.wait_for(lambda: telegram.drafts.get((USER, asked)))
    first.stop()  # the bot goes away while the worker is still writing
    assert _count(telegram, USER, "Answer 1") == 0

    start_bot()
    answer = telegram.last_with(USER, "Answer 1 to 'slow answer please'")
    assert answer.reply_to == asked

    # Telegram hands the same update out again (its offset was not confirmed): no second answer.
    telegram.push(
        "message",
        {
            "message_id": asked,
            "date": 0,
            "chat": {"id": USER, "type": "private"},
            "from": {"id": USER, "is_bot": False, "first_name": "Ann", "language_code": "en"},
            "text": "slow answer please",
        },
    )
    telegram.send_text("/help", user_id=USER)
    telegram.last_with(USER, "Commands:")
    assert _count(telegram, USER, "Answer 1 to 'slow answer please'") == 1


def test_pressing_regenerate_again_and_again_queues_one_answer(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, db: Database
) -> None:
    start_bot()
    telegram.send_text("once", user_id=USER)
    answer = telegram.last_with(USER, "Answer 1 to 'once'")
    regen = answer.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    for _ in range(10):
        telegram.press(regen, answer)
    # Every press is answered (a refused one with a notice), and one new answer is written.
    telegram.wait_for(lambda: len(telegram.called("answerCallbackQuery")) == 10)
    telegram.wait_for(lambda: _count(telegram, USER, "Answer 1 to 'once' (saw 0 answers)") == 2)
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 2


def test_a_button_under_someone_elses_answer_does_nothing(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, db: Database
) -> None:
    start_bot()
    telegram.send_text("mine", user_id=USER)
    answer = telegram.last_with(USER, "Answer 1 to 'mine'")
    regen = answer.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    telegram.press(regen, answer, user_id=5005)  # another member of a group presses it
    refusal = telegram.wait_for(lambda: telegram.called("answerCallbackQuery"))[-1]
    assert refusal["text"] == "This button belongs to someone else's answer."
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 1
