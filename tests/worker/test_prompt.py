"""Fitting a conversation into the window (fast: a model that counts bytes as tokens)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeChatModel
from worker.prompt import PromptTooLong, build_prompt, build_transcript_prompt

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


def _turn(n: int) -> list[dict[str, object]]:
    """A user's question, the call it led to, the call's result and the answer from it."""
    call = {"id": f"c{n}", "type": "function", "function": {"name": "lookup", "arguments": {"q": n}}}
    return [
        {"role": "user", "content": f"question {n} " + "x" * 100},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{n}", "name": "lookup", "content": "r" * 100},
        {"role": "assistant", "content": f"answer {n}"},
    ]


def test_a_transcript_loses_whole_turns_from_the_oldest_and_never_a_call_without_its_result() -> None:
    transcript = _turn(1) + _turn(2) + _turn(3)[:3]  # ends with the last call's result
    whole = FakeChatModel(context_window=100_000)
    fits = build_transcript_prompt(whole, "Be brief.", transcript, None, 100, min_reply_tokens=16)
    assert fits.rendered.payload == [{"role": "system", "content": "Be brief."}, *transcript]

    for window in range(400, 2000, 50):
        model = FakeChatModel(context_window=window)
        try:
            prompt = build_transcript_prompt(model, "Be brief.", transcript, None, 100, min_reply_tokens=16)
        except PromptTooLong:
            # Only when the last turn alone leaves no room for the shortest reply.
            last = model.render_chat([{"role": "system", "content": "Be brief."}, *transcript[8:]])
            assert last.size + 16 > window
            continue
        kept = prompt.rendered.payload[1:]
        assert kept[0]["role"] == "user" and kept == transcript[len(transcript) - len(kept) :]
        assert prompt.rendered.size + prompt.max_tokens <= window
        assert prompt.history_messages == len(kept) - 1
