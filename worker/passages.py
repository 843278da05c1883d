"""A document's passages in the database, and the search over them: full text (migration 0012 made
the index: FTS5 in SQLite, a GIN index in PostgreSQL), and, where the embedder is on
(worker.embedder), the passages' vectors beside it, the two rankings fused by reciprocal rank.

A search is always a person's: it joins each passage to its document and keeps the person's own,
of the documents asked for, so no question reaches another person's text.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.orm import Session

from shared.models import Document, DocumentPassage
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


Vectors = np.ndarray[Any, np.dtype[np.float32]]
# How far down each ranking a fused search looks.
_DEPTH = 20
# The embedder's cosines are crowded (multilingual-e5-small: unrelated passages score ~0.72-0.79,
# answers 0.80-0.93 on bench.retrieval_set), and a ranking by meaning always has a first: only
# passages near the best one, and near enough in themselves, count as found by meaning. On that
# set every answer the embedder found was its first, so that stays in; what is only close behind
# does not: "Blue light." for "How long do I hold the reset button?" (0.77 against the answer's
# 0.90), nor a shop's delivery page for «За сколько дней можно вернуть товар?» (0.85 against the
# returns page's 0.90).
_NEAR_BEST = 0.02
_NEAR_ENOUGH = 0.78
# Reciprocal rank fusion's constant, as its authors set it: an item scores the sum, over the
# rankings that hold it, of 1 / (60 + its rank there).
_RRF_K = 60


def embedded_text(passage: Passage) -> str:
    """What the embedder reads of a passage: its section's heading, then its text."""
    return f"{passage.section or ''}\n{passage.text}".strip()


def store(
    session: Session, document_id: str, passages: Sequence[Passage], vectors: Vectors | None = None
) -> int:
    """Write a document's passages with their terms (the index follows), and their vectors when
    the embedder gave them (float32, one row per passage); returns how many."""
    rows = [
        {
            "document_id": document_id,
            "ordinal": n,
            "page": passage.page,
            "section": passage.section,
            "text": passage.text,
            "terms": " ".join(terms(f"{passage.section or ''} {passage.text}")),
            "embedding": None if vectors is None else vectors[n].astype("<f4").tobytes(),
        }
        for n, passage in enumerate(passages)
    ]
    if rows:
        session.execute(insert(DocumentPassage), rows)
    return len(rows)


_PREFIX = 5
_COLUMNS = "p.id, p.document_id, d.name, p.page, p.section, p.text"
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
    session: Session,
    user_id: int,
    documents: Sequence[str],
    question: str,
    most: int = 5,
    question_vector: Vectors | None = None,
) -> list[Found]:
    """The `most` passages of the person's `documents` that best answer `question`, best first:
    by their words, and with `question_vector` (the embedder's) also by meaning, both fused."""
    if not documents:
        return []
    if question_vector is None:
        return [found for _, found in _by_words(session, user_id, documents, question, most)]
    lexical = dict(_by_words(session, user_id, documents, question, _DEPTH))
    dense = _by_meaning(session, user_id, documents, question_vector, _DEPTH)
    best = fused([list(lexical), dense])[:most]
    missing = [passage for passage in best if passage not in lexical]
    if missing:
        rows = session.execute(
            select(
                DocumentPassage.id,
                DocumentPassage.document_id,
                Document.name,
                DocumentPassage.page,
                DocumentPassage.section,
                DocumentPassage.text,
            )
            .join(Document, Document.id == DocumentPassage.document_id)
            .where(DocumentPassage.id.in_(missing), Document.user_id == user_id)
        )
        lexical |= {row[0]: Found(*row[1:]) for row in rows}
    return [lexical[passage] for passage in best if passage in lexical]


def _by_meaning(
    session: Session, user_id: int, documents: Sequence[str], question: Vectors, most: int
) -> list[int]:
    """The ids of the `most` passages whose vectors are nearest `question`, of those near enough
    (all vectors are unit length, so the dot product is the cosine). A person's documents hold
    thousands of passages at most (DOCUMENT_MAX_CHARS), 1.5 KB each: read and compared in one go."""
    rows = session.execute(
        select(DocumentPassage.id, DocumentPassage.embedding)
        .join(Document, Document.id == DocumentPassage.document_id)
        .where(
            Document.user_id == user_id,
            Document.id.in_(list(documents)),
            DocumentPassage.embedding.is_not(None),
        )
    ).all()
    if not rows:
        return []
    vectors = np.frombuffer(b"".join(row.embedding for row in rows), dtype="<f4").reshape(len(rows), -1)
    if vectors.shape[1] != question.shape[0]:
        return []
    scores = vectors @ question
    near = max(_NEAR_ENOUGH, float(scores.max()) - _NEAR_BEST)
    order = np.argsort(-scores, kind="stable")[:most]
    return [rows[i].id for i in order.tolist() if scores[i] >= near]


Item = TypeVar("Item", bound=Hashable)


def fused(rankings: list[list[Item]]) -> list[Item]:
    """Reciprocal rank fusion of rankings of the same kind of item, best first (ties: first met)."""
    score: dict[Item, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            score[item] = score.get(item, 0.0) + 1.0 / (_RRF_K + rank)
    return sorted(score, key=lambda item: -score[item])


def _by_words(
    session: Session, user_id: int, documents: Sequence[str], question: str, most: int
) -> list[tuple[int, Found]]:
    """(passage id, passage) for the `most` best by BM25 over the question's terms."""
    wanted = query_terms(question)
    if not wanted:
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
    return [(row[0], Found(*row[1:])) for row in rows]
