"""A scripted stand-in for the model, fast and predictable, for worker tests.

It counts one token per byte of the chat messages as JSON, and records each prompt, so a test
can read back exactly what the worker put into it. Each reply says which turn it answers
and how many earlier answers it saw: "Answer 3 to 'hello' (saw 2 answers)".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from worker.llm import ChatMessage, RenderedPrompt, Sampling


def _long_markdown() -> str:
    """About 10,000 characters: headings, paragraphs, a list and code blocks."""
    parts = []
    for n in range(1, 17):
        parts.append(f"## Part {n}\n\n" + f"Sentence {n} with **bold** words and `code`. " * 12)
        parts.append("- first point\n- second point with a [link](https://example.org)")
        if n % 4 == 0:
            parts.append("```python\n" + "\n".join(f"print({n}, {i})" for i in range(20)) + "\n```")
    return "\n\n".join(parts)


# Messages with a fixed reply, for tests that need a particular kind of answer.
SCRIPTED = {
    "!long": _long_markdown(),
    "!broken": "Broken **bold and `code and [link](http://x and _under and ```py\nno end",
}


class FakeChatModel:
    def __init__(
        self,
        context_window: int = 8192,
        token_delay: float = 0.0,
        endless: bool = False,
        fail_after: int | None = None,
    ) -> None:
        self._window = context_window
        self.token_delay = token_delay
        self.endless = endless
        self.fail_after = fail_after
        self.prompts: list[list[ChatMessage]] = []

    name = "fake-model"

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def render_chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]] | None = None
    ) -> RenderedPrompt:
        # One token per byte of the messages as JSON: a simple, predictable count.
        size = len(json.dumps(list(messages), ensure_ascii=False).encode("utf-8"))
        return RenderedPrompt(size=size, payload=[dict(m) for m in messages])

    def reply_for(self, messages: list[ChatMessage]) -> str:
        seen = sum(1 for m in messages if m["role"] == "assistant")
        question = messages[-1]["content"]
        if question == "!system":  # what the worker put first: the system message it built
            return f"System: {messages[0]['content']}" if messages[0]["role"] == "system" else "System: none"
        if question in SCRIPTED:
            return SCRIPTED[question]
        return f"Answer {seen + 1} to '{question[:40]}' (saw {seen} answers)"

    def close(self) -> None:
        """Nothing to let go of."""

    def generate(
        self,
        prompt: RenderedPrompt,
        max_tokens: int,
        should_stop: Callable[[], bool],
        sampling: Sampling,
        cache_key: str | None = None,
    ) -> Iterator[str]:
        messages: list[ChatMessage] = prompt.payload
        self.prompts.append(messages)
        words = self.reply_for(messages).split(" ")
        produced = 0
        while produced < max_tokens:
            if self.fail_after is not None and produced >= self.fail_after:
                raise RuntimeError("the fake model broke down on purpose")
            if should_stop():
                return
            if self.token_delay:
                time.sleep(self.token_delay)
            if produced < len(words):
                yield ("" if produced == 0 else " ") + words[produced]
            elif self.endless:
                yield " more"
            else:
                return
            produced += 1
