"""The pieces of a growing answer that streams send (fast, pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from api.services.stream import TextDiff


@settings(derandomize=True)
@given(st.lists(st.text(max_size=30), max_size=20))
def test_the_pieces_of_a_growing_text_add_up_to_it(additions: list[str]) -> None:
    diff, text, sent = TextDiff(), "", ""
    for addition in additions:
        text += addition
        sent += diff.delta(text)
        assert sent == text


def test_a_text_that_does_not_grow_is_sent_again_whole() -> None:
    diff = TextDiff()
    assert diff.delta("Hello wor") == "Hello wor"
    assert diff.delta("Hello world") == "ld"
    assert diff.delta("Hello world") == ""
    assert diff.delta("Goodbye") == "Goodbye"  # never expected; the client must not end up wrong
    assert diff.delta(None) == ""
