"""Document retrieval, and reading documents.

Retrieval: the documents of bench.retrieval_set (Russian and English, as PDFs) go through the
worker's own path (the reading process, passages, the database's index) into a SQLite database
migrated like the product's; each question is searched as the worker searches it, and counts when
its answer passage is among the first five. Ours is BM25 over stemmed terms (shared.terms); the
baseline is BM25 in the same FTS5 over the words unstemmed, in the same run.

Reading: a 300-page text PDF read by the reading process (pages per second, and the process's
peak memory).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, text

from bench.harness import Figure
from bench.retrieval_set import DOCUMENTS, QUESTIONS
from fakes import documents as files
from shared.config import DatabaseSettings, DocumentSettings
from shared.db import Database
from shared.migrate import upgrade
from shared.models import Conversation, Document, TaskStatus, User
from shared.terms import query_terms, terms
from worker import passages
from worker.embedder import Engine
from worker.reading.chunks import passages as cut
from worker.reading.sandbox import read_document

TOP = 5
TARGET = 0.85
BOOK_PAGES = 300


def index_set(db: Database, embedder: Engine | None = None) -> tuple[int, dict[str, str]]:
    """The set's documents read, cut and indexed for one person, with the `embedder`'s vectors if
    one is given; (their user id, name -> id)."""
    settings = DocumentSettings(_env_file=None)
    with db.writing() as session:
        user = session.scalar(insert(User).values(external_id="bench").returning(User.id))
        conversation = session.scalar(insert(Conversation).values(user_id=user).returning(Conversation.id))
        session.execute(text("CREATE VIRTUAL TABLE plain_fts USING fts5(words, tokenize='unicode61')"))
    assert user is not None
    ids = {}
    for name, pages in DOCUMENTS.items():
        read = read_document(files.pdf(pages), name, settings)
        parts = list(cut(read.units))
        document_id = ids[name] = secrets.token_hex(16)
        with db.writing() as session:
            session.execute(
                insert(Document).values(
                    id=document_id,
                    user_id=user,
                    conversation_id=conversation,
                    name=name,
                    status=TaskStatus.FINISHED,
                    size_bytes=0,
                    pages_read=read.pages or 0,
                    passages=len(parts),
                )
            )
            vectors = None
            if embedder is not None:
                vectors = embedder.embed([passages.embedded_text(part) for part in parts], query=False)
            passages.store(session, document_id, parts, vectors)
            # The baseline's index: the same passages, their words as written.
            for part in parts:
                words = " ".join(terms(part.text, stem=False))
                session.execute(text("INSERT INTO plain_fts(words) VALUES (:w)"), {"w": f"{name} {words}"})
    return user, ids


def _plain_search(db: Database, question: str) -> list[str]:
    wanted = list(dict.fromkeys(terms(question, stem=False)))
    if not wanted:
        return []
    query = " OR ".join(f'"{word}"' for word in wanted)
    with db.reading() as session:
        rows = session.execute(
            text("SELECT words FROM plain_fts WHERE plain_fts MATCH :q ORDER BY bm25(plain_fts) LIMIT :k"),
            {"q": query, "k": TOP},
        )
        return [row.words for row in rows]


def hit(found: list[str], key: str) -> bool:
    """Whether the answer's words are in one of the passages found (compared as the index sees them)."""
    wanted = " ".join(terms(key, stem=False))
    return any(wanted in " ".join(terms(passage, stem=False)) for passage in found)


def retrieval_figure() -> Figure:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'retrieval.db'}"
        upgrade(url)
        db = Database.from_settings(DatabaseSettings(_env_file=None, database_url=url))
        try:
            user, ids = index_set(db)
            ours, plain, missed = 0, 0, []
            for question in QUESTIONS:
                with db.reading() as session:
                    found = passages.search(session, user, list(ids.values()), question.text, TOP)
                if hit([f.text for f in found], question.key):
                    ours += 1
                else:
                    missed.append(question.text)
                plain += hit(_plain_search(db, question.text), question.key)
        finally:
            db.dispose()
    share, baseline = ours / len(QUESTIONS), plain / len(QUESTIONS)
    return Figure(
        f"Retrieval: the answer's passage in the first {TOP}, {len(QUESTIONS)} Russian and English "
        "questions (BM25 over stems vs over words)",
        [share],
        [baseline],
        "share",
        f"≥ {TARGET} with stemming",
        "stems ÷ words",
        passed=share >= TARGET,
        extra={
            "questions": str(len(QUESTIONS)),
            "terms per question": f"{sum(len(query_terms(q.text)) for q in QUESTIONS) / len(QUESTIONS):.1f}",
            "missed with stemming": "; ".join(missed[:4]) or "none",
        },
    )


def reading_figure(pages: int = BOOK_PAGES) -> Figure:
    """A text PDF of `pages` pages read by the reading process, against its own limit of time."""
    page = " ".join(f"Предложение {n} этой страницы рассказывает о чём-то своём." for n in range(30))
    book = files.pdf([f"Страница {n}. {page}" for n in range(pages)])
    settings = DocumentSettings(_env_file=None, document_max_pages=max(pages, 500))
    began = time.perf_counter()
    read = read_document(book, "book.pdf", settings)
    seconds = time.perf_counter() - began
    return Figure(
        f"Reading a {pages}-page text PDF (the reading process, pages per second)",
        [pages / seconds],
        [pages / settings.document_read_seconds],
        "pages/s",
        "reported",
        f"÷ the {pages} pages in DOCUMENT_READ_SECONDS",
        extra={
            "reader's peak memory": f"{read.peak_mb:.0f} MB",
            "file": f"{len(book) / 1e6:.1f} MB",
            "seconds": f"{seconds:.2f}",
        },
    )


def ocr_figure(photos: int = 3) -> Figure:
    """Photos of pages read by Tesseract through the reading process, seconds per page."""
    page = " ".join(f"Предложение {n} этой страницы рассказывает о чём-то своём." for n in range(20))
    settings = DocumentSettings(_env_file=None)
    seconds, words = [], []
    for n in range(photos):
        photo = files.page_photo(f"Страница {n}. {page}")
        began = time.perf_counter()
        read = read_document(photo, f"photo-{n}.jpg", settings)
        seconds.append(time.perf_counter() - began)
        words.append(sum(len(unit.text.split()) for unit in read.units))
    return Figure(
        "Reading a photo of a page by OCR (Tesseract, Russian and English, seconds per page)",
        seconds,
        [float(settings.document_read_seconds)] * photos,
        "s",
        "reported",
        "÷ DOCUMENT_READ_SECONDS",
        extra={"words read per page": f"{sum(words) / photos:.0f} of {len(page.split()) + 2}"},
    )


def figures() -> list[Figure]:
    return [retrieval_figure(), reading_figure(), ocr_figure()]


if __name__ == "__main__":
    from bench.harness import table_rows

    print("\n".join(table_rows(figures())))
