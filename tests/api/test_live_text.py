"""Joining the pieces of answers being written (`LiveTexts`): in order, never twice, never wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.services.live_text import LiveTexts
from shared.jobs import Growth, decode_notice, encode_notice


def _g(at: int, text: str, task_id: str = "t") -> Growth:
    return Growth(task_id=task_id, at=at, text=text)


def test_pieces_in_order_make_the_answer() -> None:
    live = LiveTexts()
    assert live.grow(_g(0, "Hel")) and live.grow(_g(3, "lo"))
    assert live.current("t", None) == "Hello"
    assert live.current("t", "He") == "Hello"  # the saved text is behind the pieces
    assert live.current("other", None) is None


def test_a_repeat_and_an_overlap_add_only_what_is_new() -> None:
    live = LiveTexts()
    live.grow(_g(0, "Hello"))
    assert not live.grow(_g(0, "Hello"))  # the same piece again
    assert not live.grow(_g(2, "llo"))  # part of what is known
    assert live.grow(_g(3, "lo, you"))  # overlaps, then continues
    assert live.current("t", None) == "Hello, you"


def test_a_piece_after_a_gap_or_against_the_text_is_left_out() -> None:
    live = LiveTexts()
    assert not live.grow(_g(4, "late"))  # nothing known before it
    live.grow(_g(0, "Hello"))
    assert not live.grow(_g(9, "gap"))
    assert not live.grow(_g(1, "ipp"))  # disagrees with what is known
    assert live.current("t", None) == "Hello"


def test_a_save_ahead_of_the_pieces_is_taken_and_later_pieces_continue_it() -> None:
    live = LiveTexts()
    live.grow(_g(0, "Hello"))
    assert live.current("t", "Hello, world") == "Hello, world"
    assert live.grow(_g(12, "!"))
    assert live.current("t", "Hello") == "Hello, world!"
    # A save that does not begin the same way (never expected) is the record: it wins.
    assert live.current("t", "Bye") == "Bye"
    assert live.current("t", None) == "Bye"


def test_the_oldest_answers_are_forgotten_beyond_the_bound() -> None:
    live = LiveTexts(max_answers=2)
    for task_id in ("a", "b", "c"):
        live.grow(_g(0, task_id.upper(), task_id))
    assert len(live) == 2
    assert live.current("a", None) is None and live.current("c", None) == "C"
    live.forget("c")
    assert live.current("c", None) is None


def test_notices_keep_their_kind_on_the_wire() -> None:
    growth = _g(5, "{json-looking} text ✓")
    assert decode_notice(encode_notice(growth)) == growth
    assert decode_notice(encode_notice("0123abcd")) == "0123abcd"
    assert decode_notice('{"task_id": "t", "at": -1, "text": "x"}') is None
    assert decode_notice('{"not": "a growth"}') is None
    with pytest.raises(ValidationError):
        Growth(task_id="t", at=0, text="")
