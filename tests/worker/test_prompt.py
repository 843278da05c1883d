"""Fitting a conversation into the window (fast: a model that counts bytes as tokens)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeChatModel
from worker.prompt import PromptTooLong, build_prompt

TURN = st.tuples(st.text(max_size=60), st.text(max_size=120))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    history=st.lists(TURN, max_size=30),
    message=st.text(min_size=1, max_size=200),
    window=st.integers(min_value=200, max_value=3000),
    max_tokens=st.integers(min_value=1, max_value=600),
)
def test_trimming_keeps_the_newest_turns_and_always_the_message(
    history: list[tuple[str, str]], message: str, window: int, max_tokens: int
) -> None:
    model = FakeChatModel(context_window=window)
    try:
        prompt = build_prompt(model, "Be brief.", history, message, max_tokens, min_reply_tokens=16)
    except PromptTooLong as refused:
        # Only when the message alone leaves no room for the shortest reply.
        alone = model.render_chat(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": message}]
        )
        assert alone.size + 16 > window and refused.prompt_tokens == alone.size
        return
    messages = prompt.rendered.payload
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[-1] == {"role": "user", "content": message}  # never dropped
    kept = [(u["content"], a["content"]) for u, a in zip(messages[1:-1:2], messages[2:-1:2], strict=True)]
    assert kept == (history[len(history) - len(kept) :] if kept else [])  # the newest ones, in order
    assert prompt.history_messages == 2 * len(kept)
    assert prompt.rendered.size + 16 <= window  # room for at least the shortest reply


def test_the_whole_history_fits_when_there_is_room() -> None:
    history = [("hi", "hello"), ("how are you?", "fine")]
    prompt = build_prompt(FakeChatModel(), "", history, "bye", 100, min_reply_tokens=8)
    assert prompt.history_messages == 4


def test_a_message_that_cannot_fit_is_refused_in_words_for_people() -> None:
    with pytest.raises(PromptTooLong) as refused:
        build_prompt(FakeChatModel(context_window=64), "", [], "x" * 200, 32, min_reply_tokens=8)
    assert "too long for this model" in refused.value.user_message
