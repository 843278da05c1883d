"""Answers from a person's documents: the passages a question finds are put before it, numbered
and named, with the instruction to answer from them and to say when they do not hold the answer.

The passages go into this turn's message, not the system prompt: the system prompt's saved state
and the conversation's kept context stay as they were, and only this turn is read anew. The
history keeps the question as the person wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.schemas import Source
from worker.passages import Found

_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
# (heading, "page", the instruction, "question"), in the language the question is asked in:
# a small model answers in the language its prompt is framed in.
_WORDING = {
    "ru": (
        "Отрывки из документов собеседника:",
        "стр.",
        "Ответь на вопрос по этим отрывкам. Если в них нет ответа, так и скажи.",
        "Вопрос:",
    ),
    "en": (
        "Passages from the person's documents:",
        "page",
        "Answer the question from these passages. If they do not hold the answer, say so.",
        "Question:",
    ),
}


@dataclass(frozen=True)
class Grounded:
    message: str
    sources: list[Source]


def ground(
    message: str, found: Sequence[Found], count_tokens: Callable[[str], int], budget: int
) -> Grounded | None:
    """`message` with the best of `found` before it, as many as fit in `budget` tokens (at least
    one, cut to fit); None when nothing was found."""
    if not found:
        return None
    heading, page_word, instruction, question = _WORDING["ru" if _CYRILLIC.search(message) else "en"]
    blocks: list[str] = []
    used: list[Found] = []
    spent = count_tokens(f"{heading}\n\n{instruction}\n\n{question} {message}")
    for n, passage in enumerate(found, start=1):
        where = f", {page_word} {passage.page}" if passage.page is not None else ""
        section = f" ({passage.section})" if passage.section and passage.page is None else ""
        block = f"[{n}] «{passage.name}»{where}{section}: {passage.text}"
        cost = count_tokens(block)
        if used and spent + cost > budget:
            break
        if not used and spent + cost > budget:
            # The best passage, cut to what fits: a question always gets its best passage.
            keep = max(0, budget - spent)
            block = block[: max(200, len(block) * keep // max(cost, 1))]
        blocks.append(block)
        used.append(passage)
        spent += cost
    text = "\n\n".join([heading, *blocks, instruction, f"{question} {message}"])
    return Grounded(text, _sources(used))


def _sources(used: Sequence[Found]) -> list[Source]:
    """Each document and page once, in the order the passages came."""
    seen: dict[tuple[str, int | None, str | None], Source] = {}
    for passage in used:
        key = (passage.document_id, passage.page, passage.section if passage.page is None else None)
        if key not in seen:
            seen[key] = Source(
                document_id=passage.document_id,
                name=passage.name,
                page=passage.page,
                section=passage.section if passage.page is None else None,
            )
    return list(seen.values())
