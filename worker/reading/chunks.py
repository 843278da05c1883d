"""A document's text cut into passages: what is indexed, found and put before the model.

A passage is whole sentences, about `WORDS` words, and never spans two pages or two sections, so
that each names one place a reader can turn to. Neighbouring passages share their edge sentence:
an answer that sits across a cut is still whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from worker.reading.formats import Unit

WORDS = 120
# A sentence longer than this (a table, a list with no full stops) is cut by words.
_LONGEST_SENTENCE = 2 * WORDS
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


@dataclass(frozen=True)
class Passage:
    text: str
    page: int | None
    section: str | None


def passages(units: Iterable[Unit]) -> Iterator[Passage]:
    """The passages of a document's units, in order."""
    place: tuple[int | None, str | None] | None = None
    sentences: list[str] = []
    for unit in units:
        here = (unit.page, unit.section)
        if here != place and sentences:
            assert place is not None
            yield from _pack(sentences, *place)
            sentences = []
        place = here
        sentences += _sentences(unit.text)
    if sentences and place is not None:
        yield from _pack(sentences, *place)


def _sentences(text: str) -> list[str]:
    found: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        for start in range(0, len(words), _LONGEST_SENTENCE):
            found.append(" ".join(words[start : start + _LONGEST_SENTENCE]))
    return [sentence for sentence in found if sentence]


def _pack(sentences: list[str], page: int | None, section: str | None) -> Iterator[Passage]:
    current: list[str] = []
    size = 0
    fresh = 0  # sentences of `current` not already in the passage before
    for sentence in sentences:
        words = len(sentence.split())
        if fresh and size + words > WORDS:
            yield Passage(" ".join(current), page, section)
            # The edge sentence starts the next passage too, unless it is long enough to stand alone.
            edge = len(current[-1].split())
            current, size = ([current[-1]], edge) if edge < WORDS // 2 else ([], 0)
            fresh = 0
        current.append(sentence)
        size += words
        fresh += 1
    if fresh:
        yield Passage(" ".join(current), page, section)
