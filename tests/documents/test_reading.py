"""Reading documents in a process with limits: each kind's text and where it is, and one clear
reason for each file that cannot be read, with the worker's own process untouched."""

from __future__ import annotations

import itertools

import pytest

from fakes import documents as files
from shared.config import DocumentSettings
from shared.enums import DocumentFailure
from worker.reading.chunks import WORDS, passages
from worker.reading.formats import Unit, Unreadable
from worker.reading.sandbox import read_document

SETTINGS = DocumentSettings(_env_file=None)


def _failure(data: bytes, name: str = "file", settings: DocumentSettings = SETTINGS) -> Unreadable:
    with pytest.raises(Unreadable) as caught:
        read_document(data, name, settings)
    return caught.value


def test_a_russian_pdf_is_read_page_by_page_with_progress() -> None:
    told: list[tuple[int, int | None]] = []
    found = read_document(
        files.pdf(["Кошка спит на диване.", "Столица Франции — Париж.", "The third page."]),
        "книга.pdf",
        SETTINGS,
        on_page=lambda page, pages: told.append((page, pages)),
    )
    assert found.kind == "pdf" and found.pages == 3
    assert [(unit.page, unit.text) for unit in found.units] == [
        (1, "Кошка спит на диване."),
        (2, "Столица Франции — Париж."),
        (3, "The third page."),
    ]
    assert told == [(1, 3), (2, 3), (3, 3)]


def test_word_html_markdown_and_text_keep_their_sections() -> None:
    word = read_document(
        files.docx(
            [("Heading1", "Доставка"), (None, "Заказы везут за два дня."), (None, "Бесплатно от 1000 ₽.")]
        ),
        "rules.docx",
        SETTINGS,
    )
    assert word.kind == "docx"
    assert [(unit.section, unit.text) for unit in word.units] == [
        ("Доставка", "Доставка"),
        ("Доставка", "Заказы везут за два дня."),
        ("Доставка", "Бесплатно от 1000 ₽."),
    ]
    page = read_document(
        b"<!doctype html><html><head><title>t</title><script>var secret = 1;</script></head>"
        b"<body><h2>Returns</h2><p>Within 14 days.</p><style>p{}</style></body></html>",
        "page.bin",
        SETTINGS,
    )
    assert page.kind == "html"
    assert [(unit.section, unit.text) for unit in page.units] == [("Returns", "Returns\nWithin 14 days.")]
    notes = read_document("# Оплата\n\nКартой или наличными.\n".encode(), "notes.md", SETTINGS)
    assert notes.kind == "markdown"
    assert [unit.section for unit in notes.units] == ["Оплата", "Оплата"]
    # Russian text from Windows, in its own encoding, is read too.
    old = read_document("Привет из Windows.".encode("cp1251"), "old.txt", SETTINGS)
    assert old.kind == "text" and old.units == [Unit("Привет из Windows.")]


@pytest.mark.parametrize(
    ("data", "failure"),
    [
        (files.pdf(["secret"], password="1234"), DocumentFailure.ENCRYPTED),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> broken", DocumentFailure.UNREADABLE),
        (files.blank_pdf(10_000), DocumentFailure.TOO_LARGE),
        (files.docx_bomb(100 * 1_048_576), DocumentFailure.TOO_LARGE),
        (files.docx_entities(), DocumentFailure.UNREADABLE),
        (b"PK\x03\x04not really a zip", DocumentFailure.UNREADABLE),
        (b"GIF89a" + bytes(100), DocumentFailure.UNSUPPORTED),
        (b"\x7fELF\x02\x01\x01" + bytes(100), DocumentFailure.UNSUPPORTED),
    ],
    ids=[
        "encrypted",
        "malformed",
        "10000-pages",
        "zip-bomb",
        "entity-bomb",
        "broken-zip",
        "picture",
        "program",
    ],
)
def test_each_unreadable_file_gets_its_reason(data: bytes, failure: DocumentFailure) -> None:
    assert _failure(data).failure is failure


def test_a_reader_over_its_memory_is_stopped_and_too_much_text_is_refused() -> None:
    # 20 MB of text in one paragraph, read with a small memory limit: the reader runs out, not us.
    huge = ("слово " * 3_500_000).encode()
    tight = DocumentSettings(
        _env_file=None,
        document_read_memory_mb=128,
        document_max_chars=50_000_000,
        document_max_bytes=50_000_000,
    )
    assert _failure(huge, "huge.txt", tight).failure is DocumentFailure.TOO_COSTLY
    # Too much text for the character limit is said as such.
    roomy = DocumentSettings(_env_file=None, document_max_bytes=50_000_000)
    assert _failure(huge, "huge.txt", roomy).failure is DocumentFailure.TOO_LARGE


def test_a_file_over_the_size_limit_is_refused_before_it_is_read() -> None:
    small = DocumentSettings(_env_file=None, document_max_bytes=2048)
    assert _failure(b"x" * 4096, "a.txt", small).failure is DocumentFailure.TOO_LARGE


def test_passages_hold_whole_sentences_one_place_each_and_share_their_edges() -> None:
    sentences = [f"Sentence {n} tells of item {n}." for n in range(80)]
    units = [Unit(" ".join(sentences), page=1), Unit("Page two stands alone.", page=2)]
    cut = list(passages(units))
    assert [p.page for p in cut][-1] == 2 and cut[-1].text == "Page two stands alone."
    first_page = [p for p in cut if p.page == 1]
    assert len(first_page) > 1
    for before, after in itertools.pairwise(first_page):
        assert len(before.text.split()) <= WORDS
        # The last sentence of one passage opens the next: nothing is lost at a cut.
        assert after.text.startswith(before.text.rsplit(". ", 1)[-1].rstrip("."))
    joined = " ".join(p.text for p in first_page)
    assert all(sentence in joined for sentence in sentences)


def test_a_photo_of_a_russian_page_is_read_by_ocr() -> None:
    photo = files.page_photo("Столица Франции — Париж. Кошка спит на диване.")
    found = read_document(photo, "photo.jpg", SETTINGS)
    assert found.kind == "image" and found.pages == 1
    assert "Столица Франции" in found.units[0].text and "Париж" in found.units[0].text
    png = read_document(files.page_photo("The capital of Japan is Tokyo.", jpeg=False), "p.png", SETTINGS)
    assert "capital of Japan is Tokyo" in png.units[0].text
