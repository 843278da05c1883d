"""Fitting a conversation into the model's context window, counted with the model's own tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.enums import FinishReason
from worker.errors import ModelFailure
from worker.llm import ChatMessage, ChatModel, RenderedPrompt

# Template tokens around each message (role markers, separators); only used to pick a first guess.
_PER_MESSAGE_OVERHEAD = 8


class PromptTooLong(ModelFailure):
    """The new message alone does not fit in the context window."""

    failure_kind = FinishReason.CONTEXT_LENGTH

    def __init__(self, prompt_tokens: int, limit: int) -> None:
        super().__init__(f"prompt of {prompt_tokens} tokens exceeds the limit of {limit}")
        self.prompt_tokens = prompt_tokens
        self.limit = limit

    @property
    def user_message(self) -> str:
        return (
            f"Your message is too long for this model: it takes {self.prompt_tokens} tokens, "
            f"and at most {self.limit} fit. Please shorten it or split it into parts."
        )


@dataclass(frozen=True)
class Prompt:
    rendered: RenderedPrompt
    max_tokens: int
    history_messages: int


def build_prompt(
    model: ChatModel,
    system_prompt: str,
    history: Sequence[tuple[str, str]],
    message: str,
    max_tokens: int,
    min_reply_tokens: int,
) -> Prompt:
    """The newest turns of `history` (user, assistant pairs) that fit beside `message` and a reply.

    Room for `max_tokens` of reply is kept when the history allows; the message itself must leave
    at least `min_reply_tokens`, or `PromptTooLong` is raised.
    """
    window = model.context_window
    head: list[ChatMessage] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    tail: list[ChatMessage] = [{"role": "user", "content": message}]

    bare = model.render_chat(head + tail)
    if bare.size + min_reply_tokens > window:
        raise PromptTooLong(bare.size, window - min_reply_tokens)

    budget = window - max(max_tokens, min_reply_tokens)
    # A cheap estimate picks how many pairs to try; the real template count then decides.
    room = budget - bare.size
    pairs = 0
    for user_text, reply_text in reversed(history):
        cost = model.count_tokens(user_text) + model.count_tokens(reply_text) + 2 * _PER_MESSAGE_OVERHEAD
        if cost > room:
            break
        room -= cost
        pairs += 1

    rendered = bare
    while pairs > 0:
        turns: list[ChatMessage] = []
        for user_text, reply_text in history[len(history) - pairs :]:
            turns.append({"role": "user", "content": user_text})
            turns.append({"role": "assistant", "content": reply_text})
        candidate = model.render_chat(head + turns + tail)
        if candidate.size <= budget:
            rendered = candidate
            break
        pairs -= 1

    return Prompt(
        rendered=rendered, max_tokens=min(max_tokens, window - rendered.size), history_messages=2 * pairs
    )


def build_transcript_prompt(
    model: ChatModel,
    system_prompt: str,
    transcript: Sequence[ChatMessage],
    tools: Sequence[dict[str, Any]] | None,
    max_tokens: int,
    min_reply_tokens: int,
) -> Prompt:
    """A conversation a /v1 request brought whole (tool calls and results in it), with the tools.

    When it does not fit beside a reply, its oldest turns go first, each from a user's message to
    the next one, so that a call is never kept without its result or the other way round; what
    remains from the last user's message on must leave `min_reply_tokens`, or `PromptTooLong`."""
    window = model.context_window
    head: list[ChatMessage] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    starts = [0] + [n for n, message in enumerate(transcript) if n and message["role"] == "user"]
    budget = window - max(max_tokens, min_reply_tokens)
    rendered = None
    for start in starts:
        rendered = model.render_chat(head + list(transcript[start:]), tools)
        if rendered.size <= budget:
            break
    assert rendered is not None
    if rendered.size + min_reply_tokens > window:
        raise PromptTooLong(rendered.size, window - min_reply_tokens)
    return Prompt(
        rendered=rendered,
        max_tokens=min(max_tokens, window - rendered.size),
        history_messages=len(transcript) - 1 - start,
    )
