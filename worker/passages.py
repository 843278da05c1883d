"""A document's passages in the database, and the full-text search over them (migration 0012 made
the index: FTS5 in SQLite, a GIN index in PostgreSQL).

A search is always a person's: it joins each passage to its document and keeps the person's own,
of the documents asked for, so no question reaches another person's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, text
from sqlalchemy.orm import Session

from shared.models import DocumentPassage
from shared.terms import query_terms, terms
from worker.reading.chunks import Passage


@dataclass(frozen=True)
class Found:
    """A passage a question found, with where it is from."""

    document_id: str
    name: str
    page: int | None
    section: str | None
    text: str


def store(session: Session, document_id: str, passages: Iterable[Passage]) -> int:
    """Write a document's passages with their terms (the index follows); returns how many."""
    rows = [
        {
            "document_id": document_id,
            "ordinal": n,
            "page": passage.page,
            "section": passage.section,
            "text": passage.text,
            "terms": " ".join(terms(f"{passage.section or ''} {passage.text}")),
        }
        for n, passage in enumerate(passages)
    ]
    if rows:
        session.execute(insert(DocumentPassage), rows)
    return len(rows)


_PREFIX = 5
_COLUMNS = "p.document_id, d.name, p.page, p.section, p.text"
_SQLITE = text(
    f"SELECT {_COLUMNS} FROM document_passage_fts "
    "JOIN document_passage p ON p.id = document_passage_fts.rowid "
    "JOIN document d ON d.id = p.document_id "
    "WHERE document_passage_fts MATCH :query AND d.user_id = :user_id AND d.id IN :documents "
    "ORDER BY bm25(document_passage_fts), p.id LIMIT :most"
).bindparams(bindparam("documents", expanding=True))
# Rank 1: term frequency divided by 1 + the log of the passage's length, as BM25 also weighs it.
_POSTGRESQL = text(
    f"SELECT {_COLUMNS} FROM document_passage p JOIN document d ON d.id = p.document_id, "
    "to_tsquery('simple', :query) q "
    "WHERE to_tsvector('simple', p.terms) @@ q AND d.user_id = :user_id AND d.id IN :documents "
    "ORDER BY ts_rank(to_tsvector('simple', p.terms), q, 1) DESC, p.id LIMIT :most"
).bindparams(bindparam("documents", expanding=True))


def search(
    session: Session, user_id: int, documents: Sequence[str], question: str, most: int = 5
) -> list[Found]:
    """The `most` passages of the person's `documents` that best answer `question`, best first."""
    wanted = query_terms(question)
    if not wanted or not documents:
        return []
    sqlite = session.get_bind().dialect.name == "sqlite"
    # Each term is asked for by its first letters, so that what the stemmer leaves apart still
    # meets («наличкой» наличк-, «наличными» наличн-: налич*). Measured on bench.retrieval_set:
    # the answer in the first five for 0.78 of the questions with whole stems, 0.84 with 5
    # letters (4: the same, 6: 0.81). The terms are letters and digits only (shared.terms):
    # nothing in them is query syntax.
    heads = [term[:_PREFIX] for term in wanted]
    query = (
        " OR ".join(f'"{head}"*' for head in heads) if sqlite else " | ".join(f"{head}:*" for head in heads)
    )
    rows = session.execute(
        _SQLITE if sqlite else _POSTGRESQL,
        {"query": query, "user_id": user_id, "documents": list(documents), "most": most},
    )
    return [Found(*row) for row in rows]
