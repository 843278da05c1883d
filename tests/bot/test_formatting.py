"""Answers' Markdown as Telegram entities: what it renders, and that no answer can stall the bot."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import formatting
from bot.delivery import progress_text
from bot.formatting import format_answer, format_guarded
from shared.enums import TaskStatus
from shared.schemas import TaskOut, Usage


def _one(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    ((text, entities),) = format_answer(markdown)
    return text, [(e.type, text[e.offset : e.offset + e.length]) for e in entities]


def test_the_usual_markdown_becomes_entities() -> None:
    text, entities = _one("## Plan ##\n- **bold** and *it*, `x = 1`, ~~old~~\n\n```py\nprint(1)\n```")
    assert text == "Plan\n• bold and it, x = 1, old\n\nprint(1)"
    assert entities == [
        ("bold", "Plan"),
        ("bold", "bold"),
        ("italic", "it"),
        ("code", "x = 1"),
        ("strikethrough", "old"),
        ("pre", "print(1)"),
    ]


def test_unclosed_or_unknown_markup_stays_literal() -> None:
    assert _one("**not closed, and 2 * 3 = 6") == ("**not closed, and 2 * 3 = 6", [])
    assert _one("#hashtag, not a heading") == ("#hashtag, not a heading", [])


def test_a_link_always_shows_where_it_leads() -> None:
    text, entities = _one("Log in [at your bank](https://evil.example/login) now")
    assert text == "Log in at your bank (https://evil.example/login) now"
    assert entities == [("text_link", "https://evil.example/login")]
    assert _one("[https://a.example](https://a.example)") == (
        "https://a.example",
        [("text_link", "https://a.example")],
    )
    # No link entity for other schemes; the target is still shown.
    assert _one("[tap](tg://resolve?domain=x)")[1] == []
    assert "tg://resolve?domain=x" in _one("[tap](tg://resolve?domain=x)")[0]


HOSTILE = [
    "# x" + " " * 4000 + "x",  # cubic for the heading regex this replaced (50 s for a 4,000-char line)
    "**a " * 2000,
    "*a " * 2000,
    "_a " * 2000,
    "~~a " * 2000,
    "[a](" * 1500,
    "`" * 4000,
    "**" + "*a_" * 1500 + "\n" + "# " + "**x " * 1500,
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("markdown", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_markdown_is_formatted_whole(markdown: str) -> None:
    """Each would take minutes with a backtracking parser; markdown-it-py's is linear."""
    parts = format_answer(markdown * 3)
    assert parts and all(formatting.utf16_len(text) <= formatting.LIMIT for text, _ in parts)


def test_formatting_never_holds_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A formatter stuck on one answer: other chats go on, and that answer goes out as plain text."""
    release = threading.Event()

    def stuck(markdown: str, limit: int = formatting.LIMIT) -> list[tuple[str, list[object]]]:
        release.wait(10)
        return []

    monkeypatch.setattr(formatting, "format_answer", stuck)
    monkeypatch.setattr(formatting, "FORMAT_SECONDS", 0.5)

    async def scenario() -> tuple[list[tuple[str, list[object]]], int]:
        ticks = 0

        async def another_chat() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        other = asyncio.create_task(another_chat())
        parts = await format_guarded("**hostile** answer")
        release.set()
        await other
        return parts, ticks  # type: ignore[return-value]

    parts, ticks = asyncio.run(scenario())
    assert parts == [("**hostile** answer", [])]
    assert ticks >= 10  # the loop ran the other chat while the formatter was stuck


def test_very_long_answers_go_as_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(markdown: str, limit: int = formatting.LIMIT) -> list[tuple[str, list[object]]]:
        raise AssertionError("an answer over the size guard is not parsed")

    monkeypatch.setattr(formatting, "format_answer", never)
    answer = "word **bold** " * (formatting.MAX_FORMATTED_CHARS // 10)
    parts = asyncio.run(format_guarded(answer))
    assert len(parts) > 1 and all(not entities for _, entities in parts)
    assert "".join(text for text, _ in parts).replace(" ", "") == answer.replace(" ", "")


# --- properties, over any text ------------------------------------------------------------------

MARKDOWN_PIECES = st.sampled_from(
    [
        "**",
        "*",
        "_",
        "__",
        "~~",
        "`",
        "```",
        "```py",
        "# ",
        "- ",
        "[",
        "](",
        "https://a.example",
        ")",
        "\n",
        "\n\n",
        " ",
        "word",
        "😀",
        "я",
        "\\",
        "<|im_start|>",
    ]
)
ANY_MARKDOWN = st.lists(st.one_of(MARKDOWN_PIECES, st.text(max_size=20)), max_size=400).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(markdown=ANY_MARKDOWN, limit=st.integers(min_value=64, max_value=4096))
# Found by a random run: a percent-encoded link target made the text longer than its source.
@example(markdown="****[](0\x80\x80\u0800\U00010000\U00010000\U00010000)", limit=64)
def test_formatted_parts_fit_and_entities_nest(markdown: str, limit: int) -> None:
    for text, entities in format_answer(markdown, limit):
        size = formatting.utf16_len(text)
        assert 0 < size <= limit
        spans = [(e.offset, e.offset + e.length) for e in entities]
        assert all(0 <= start < end <= size for start, end in spans)
        for a_start, a_end in spans:  # two entities are apart, or one holds the other
            for b_start, b_end in spans:
                apart = a_end <= b_start or b_end <= a_start
                nested = (a_start <= b_start and b_end <= a_end) or (b_start <= a_start and a_end <= b_end)
                assert apart or nested


def _started(partial: str) -> TaskOut:
    return TaskOut(
        task_id="t1",
        status=TaskStatus.STARTED,
        partial_text=partial,
        conversation_id=1,
        created_at=datetime.now(UTC),
        usage=Usage(),
    )


@settings(max_examples=150, deadline=None, derandomize=True)
@given(partial=st.text(alphabet=st.sampled_from("a я😀\n"), min_size=1, max_size=6000))
def test_a_growing_answer_always_fits_one_message(partial: str) -> None:
    shown = progress_text(_started(partial), "en")
    assert formatting.utf16_len(shown) <= formatting.LIMIT


def test_an_emoji_heavy_growing_answer_fits() -> None:
    shown = progress_text(_started("😀" * 3000), "en")
    assert formatting.utf16_len(shown) <= formatting.LIMIT and shown.endswith("😀 ▌")
