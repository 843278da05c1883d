"""A conversation's title made from its first message (by the gateway, or by a worker once a voice
note's words are known)."""

from __future__ import annotations

import re

TITLE_FROM_MESSAGE_CHARS = 60


def title_from(text: str) -> str:
    """A short title from a first message: its words on one line, cut at a word if it is long."""
    words = re.sub(r"\s+", " ", text).strip()
    if len(words) <= TITLE_FROM_MESSAGE_CHARS:
        return words
    cut = words[:TITLE_FROM_MESSAGE_CHARS].rsplit(" ", 1)[0] or words[:TITLE_FROM_MESSAGE_CHARS]
    return cut.rstrip(" ,.;:") + "…"
