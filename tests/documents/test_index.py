"""The passages' full-text index, in SQLite (FTS5, BM25) and PostgreSQL (GIN over tsvector): word
forms meet through their stems, a search sees only its person's documents, and deleting a
document (or the person) takes its passages out of the index."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, text, update

from shared.db import Database
from shared.models import Conversation, Document, DocumentPassage, utcnow
from shared.retention import forget_user, purge_conversations
from shared.terms import query_terms, terms
from tests.documents.rows import add_document, add_person
from worker import passages
from worker.reading.chunks import Passage


def _indexed(db: Database, term: str) -> int:
    """Passages the database's own index finds for one term."""
    with db.reading() as session:
        if session.get_bind().dialect.name == "sqlite":
            query = "SELECT count(*) FROM document_passage_fts WHERE document_passage_fts MATCH :term"
            return session.scalar(text(query), {"term": f'"{term}"'}) or 0
        query = (
            "SELECT count(*) FROM document_passage "
            "WHERE to_tsvector('simple', terms) @@ to_tsquery('simple', :term)"
        )
        return session.scalar(text(query), {"term": term}) or 0


SHOP = [
    Passage("Заказы доставляют курьером за два рабочих дня.", 1, "Доставка"),
    Passage("Вернуть товар можно в течение четырнадцати дней после покупки.", 2, "Возврат"),
    Passage("Payment is accepted by card or in cash on delivery.", 3, "Payment"),
]


def test_word_forms_meet_and_the_best_passage_comes_first(db: Database) -> None:
    person = add_person(db, "tg:1")
    document = add_document(db, person, SHOP)
    with db.reading() as session:
        # «возврат»/«вернуть» differ; «дней»/«день», «покупки»/«покупка» share stems.
        found = passages.search(session, person[0], [document], "Сколько дней после покупки на возврат?")
        assert found and found[0].page == 2 and found[0].section == "Возврат"
        found = passages.search(session, person[0], [document], "How do I pay? Cards?")
        assert found and found[0].page == 3
        assert passages.search(session, person[0], [document], "Какая погода на Марсе?") == []


def test_a_search_sees_only_the_persons_own_documents(db: Database) -> None:
    alice, bob = add_person(db, "tg:1"), add_person(db, "tg:2")
    hers = add_document(db, alice, SHOP)
    his = add_document(db, bob, [Passage("Доставка дронами за час.", 1, None)])
    with db.reading() as session:
        # Bob naming Alice's document gets nothing of it; Alice naming his, nothing of his.
        assert passages.search(session, bob[0], [hers, his], "доставка") == [
            passages.Found(his, f"{his[:6]}.pdf", 1, None, "Доставка дронами за час.")
        ]
        assert [f.document_id for f in passages.search(session, alice[0], [his], "доставка")] == []


def test_deleting_a_document_or_its_person_takes_it_out_of_the_index(db: Database) -> None:
    person = add_person(db, "tg:1")
    first = add_document(db, person, SHOP)
    add_document(db, person, SHOP)
    stem = terms("доставляют")[0]
    assert _indexed(db, stem) == 2
    with db.writing() as session:
        session.execute(delete(Document).where(Document.id == first))
    assert _indexed(db, stem) == 1
    with db.reading() as session:
        left = session.scalar(select(func.count()).where(DocumentPassage.document_id == first))
    assert left == 0
    # The person deletes themselves (/forget): the rest goes.
    assert forget_user(db, "tg:1")
    assert _indexed(db, stem) == 0


def test_retention_takes_old_conversations_documents_with_them(db: Database) -> None:
    person = add_person(db, "tg:1")
    add_document(db, person, SHOP)
    stem = terms("доставляют")[0]
    with db.writing() as session:
        session.execute(update(Conversation).values(created_at=utcnow() - timedelta(days=40)))
    assert purge_conversations(db, older_than_days=30) == 1
    assert _indexed(db, stem) == 0


def test_terms_are_stems_without_the_common_words() -> None:
    assert terms("Документы и документами, ёлки!") == ["документ", "документ", "елк"]
    assert terms("Reading the documents") == ["read", "document"]
    assert query_terms("что такое такое договор договора 2024") == ["договор", "2024"]
