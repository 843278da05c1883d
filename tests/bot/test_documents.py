"""Documents in Telegram, end to end: the fake Bot API serves the file, the real bot sends it to
the gateway, a worker reads it (progress shown in one message), the caption is asked, and the
answer comes with its sources; /docs lists and deletes them, and only their owner's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.quality import language_of
from fakes import documents as files
from fakes.telegram import FakeTelegram
from tests.bot.conftest import BotRunner

USER, OTHER = 1001, 1002
RULES = files.pdf(
    ["Доставка занимает два рабочих дня.", "Вернуть товар можно в течение 14 дней после покупки."]
)


def test_a_document_is_read_then_its_caption_is_answered_with_its_sources(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    sent = telegram.send_document(
        RULES, "правила.pdf", caption="За сколько дней можно вернуть товар?", user_id=USER, language="ru"
    )
    # One message tells of the reading, and ends saying it is read.
    read = telegram.last_with(USER, "прочитан (2 стр.)", timeout=60)
    assert read.reply_to == sent and read.text.startswith("📄 «правила.pdf»")
    answer = telegram.wait_for(lambda: [m for m in telegram.chat(USER) if m.reply_markup], timeout=60)[0]
    assert answer.text.startswith("Answer 1 to 'Отрывки из документов")
    assert answer.text.endswith("📄 Источники: «правила.pdf», стр. 2")
    assert [call["path"] for call in telegram.called("download")] == [f"documents/file-{sent}"]
    # A question typed later in the same conversation is answered from the document too.
    telegram.send_text("Сколько идёт доставка?", user_id=USER, language="ru")
    again = telegram.last_with(USER, "Answer 2 to", timeout=60)
    assert again.text.endswith("📄 Источники: «правила.pdf», стр. 1")


def test_docs_lists_and_deletes_only_the_persons_own_documents(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_document(RULES, "rules.pdf", user_id=USER)
    assert telegram.last_with(USER, "«rules.pdf» is read (2 pages)", timeout=60)
    word = files.docx([("Heading1", "Оплата"), (None, "Картой или наличными при получении.")])
    telegram.send_document(word, "оплата.docx", caption="Как оплатить?", user_id=OTHER, language="ru")
    paid = telegram.wait_for(lambda: [m for m in telegram.chat(OTHER) if m.reply_markup], timeout=60)[0]
    assert paid.text.endswith("📄 Источники: «оплата.docx» (Оплата)")
    telegram.send_text("/docs", user_id=12)
    assert telegram.last_with(12, "You have sent me no documents", timeout=30)
    telegram.send_text("/docs", user_id=USER)
    listing = telegram.last_with(USER, "Your documents", timeout=30)
    assert "• «rules.pdf»: read" in listing.text
    assert listing.reply_markup is not None
    button = listing.reply_markup["inline_keyboard"][0][0]
    # Someone else pressing the same button (a forged press) deletes nothing.
    telegram.press(button["callback_data"], listing, user_id=OTHER)
    assert telegram.wait_for(lambda: telegram.called("answerCallbackQuery"), timeout=30)
    telegram.send_text("/docs", user_id=USER)
    mine = telegram.last_with(USER, "Your documents", timeout=30).text
    assert "rules.pdf" in mine and "оплата.docx" not in mine
    telegram.press(button["callback_data"], listing, user_id=USER)
    assert telegram.last_with(USER, "You have sent me no documents", timeout=30)


def test_documents_that_cannot_be_read_get_their_own_words(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_document(files.pdf(["тайна"], password="1"), "secret.pdf", caption="Что там?", user_id=11)
    assert telegram.last_with(11, "«secret.pdf» is protected by a password", timeout=60)
    telegram.send_document(b"GIF89a" + bytes(64), "cat.gif", user_id=12)
    assert telegram.last_with(12, "and «cat.gif» is none of them", timeout=60)
    big = telegram.send_document(b"%PDF-1.4", "huge.pdf", user_id=13, size=25 * 1024 * 1024)
    assert telegram.last_with(13, "at most 20 MB", timeout=30)
    assert f"file-{big}" not in {call["file_id"] for call in telegram.called("getFile")}  # never fetched
    # Nothing was asked for a document that could not be read.
    assert not [m for m in telegram.chat(11) if m.reply_markup]


@pytest.mark.slow
def test_a_russian_pdf_is_answered_from_its_text_by_the_real_model(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], real_worker: Callable[..., Any]
) -> None:
    real_worker(MAX_TOKENS="64", TEMPERATURE="0")
    start_bot()
    telegram.send_document(
        RULES, "правила.pdf", caption="За сколько дней можно вернуть товар?", user_id=USER, language="ru"
    )
    answer = telegram.wait_for(lambda: [m for m in telegram.chat(USER) if m.reply_markup], timeout=240)[0]
    assert "14" in answer.text or "четырнадцат" in answer.text.lower(), answer.text
    assert language_of(answer.text) == "ru", answer.text
    assert answer.text.endswith("📄 Источники: «правила.pdf», стр. 2")


def test_a_photo_of_a_page_is_read_by_ocr_and_answered_from_it(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    photo = files.page_photo("Пункт выдачи работает с девяти утра до девяти вечера.")
    sent = telegram.send_photo(photo, caption="Когда работает пункт выдачи?", user_id=USER, language="ru")
    read = telegram.last_with(USER, "прочитан", timeout=90)
    assert read.text.startswith(f"📄 «фото-{sent}.jpg»")
    # The largest of the sizes Telegram offers is the one fetched.
    assert [call["path"] for call in telegram.called("download")] == [f"photos/photo-{sent}-1.jpg"]
    answer = telegram.wait_for(lambda: [m for m in telegram.chat(USER) if m.reply_markup], timeout=60)[0]
    # Found by the question's words, so the page's words were read from the picture.
    assert answer.text.endswith(f"📄 Источники: «фото-{sent}.jpg», стр. 1")
