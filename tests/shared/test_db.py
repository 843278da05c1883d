"""SQLite set-up: pragmas on every connection, migrations that match the models, no lock errors."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from api.services import users
from shared.config import DatabaseSettings
from shared.db import Database
from shared.migrate import alembic_config, upgrade
from shared.models import Conversation, Message, User
from tests.conftest import sqlite_only


@sqlite_only
def test_every_connection_has_wal_busy_timeout_and_foreign_keys(db: Database) -> None:
    seen = []
    # Several connections at once, from both kinds of session.
    with db.reading() as a, db.reading() as b, db.writing() as c:
        for session in (a, b, c):
            seen.append(
                (
                    session.execute(text("PRAGMA journal_mode")).scalar(),
                    session.execute(text("PRAGMA busy_timeout")).scalar(),
                    session.execute(text("PRAGMA foreign_keys")).scalar(),
                    session.execute(text("PRAGMA secure_delete")).scalar(),
                )
            )
    assert seen == [("wal", 10_000, 1, 1)] * 3


def test_a_failing_statement_does_not_quote_what_people_wrote(db: Database) -> None:
    secret = "my bank password is hunter2"
    with pytest.raises(IntegrityError) as failure, db.writing() as session:
        # A message in a conversation that does not exist: the foreign key refuses it.
        session.add(Message(conversation_id=987654, role="user", content=secret))
    assert secret not in str(failure.value)


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    # Raises if the models and the migrated schema differ.
    command.check(alembic_config(url))
    database = Database.from_settings(DatabaseSettings(_env_file=None, database_url=url))
    assert set(inspect(database.engine).get_table_names()) >= {"user", "conversation", "message", "task"}
    database.dispose()
    command.downgrade(alembic_config(url), "base")
    upgrade(url)


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"), db.writing() as session:
        session.add(Message(conversation_id=12345, role="user", content="orphan"))


@sqlite_only
def test_concurrent_read_then_write_transactions_never_hit_locked(db: Database) -> None:
    with db.writing() as session:
        user = User(external_id="counter")
        session.add(user)
        session.flush()
        session.add(Conversation(user_id=user.id, chat_id="0"))
    errors: list[Exception] = []

    def bump(times: int) -> None:
        try:
            for _ in range(times):
                # Read, then write in the same transaction: the pattern that fails with deferred BEGIN.
                with db.writing() as s:
                    value = int(s.scalar(select(Conversation.chat_id)) or "0")
                    s.execute(update(Conversation).values(chat_id=str(value + 1)))
        except Exception as exc:  # noqa: BLE001 - any failure is reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(100,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    with db.reading() as s:
        # No lost update either: every increment landed.
        assert s.scalar(select(Conversation.chat_id)) == "600"


def test_upgrading_keeps_every_conversation_message_and_task(tmp_path: Path) -> None:
    """Written by the previous schema, read by this one: a migration that copies a table (SQLite
    changes columns that way) must not take the rows that point at it along."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0006")
    raw = sqlite3.connect(tmp_path / "old.db")
    at = "2026-11-27 10:00:00.000000"
    raw.execute("INSERT INTO user (id, external_id, created_at) VALUES (1, 'u', ?)", (at,))
    raw.execute("INSERT INTO conversation (id, user_id, chat_id, created_at) VALUES (1, 1, '', ?)", (at,))
    for id_, role, content in ((1, "user", "hi"), (2, "assistant", "hello")):
        raw.execute(
            "INSERT INTO message (id, conversation_id, role, content, created_at) VALUES (?, 1, ?, ?, ?)",
            (id_, role, content, at),
        )
    raw.execute(
        "INSERT INTO task (id, user_id, conversation_id, request_message_id, reply_message_id, status, "
        "cancel_requested, superseded, created_at) VALUES ('t1', 1, 1, 1, 2, 'finished', 0, 0, ?)",
        (at,),
    )
    raw.commit()
    raw.close()

    upgrade(url)
    database = Database.from_settings(DatabaseSettings(_env_file=None, database_url=url))
    try:
        (exchange,) = users.history(database, "u", None, 100)
        assert (exchange.question, exchange.answer) == ("hi", "hello")
        # And back down and up again, still whole.
        command.downgrade(alembic_config(url), "0006")
        upgrade(url)
        assert [e.answer for e in users.history(database, "u", None, 100)] == ["hello"]
    finally:
        database.dispose()


def test_a_connection_still_in_use_when_the_database_is_disposed_is_closed_once_returned(
    db_url: str,
) -> None:
    """A read in another thread may outlive the engine's dispose (a request at shutdown): its
    connection must be closed when it comes back, not left open until garbage collection."""
    database = Database.from_settings(DatabaseSettings(_env_file=None, database_url=db_url))
    with database.reading() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        database.dispose()
    with pytest.raises(Exception, match=r"(?i)closed"):
        raw.cursor().execute("SELECT 1")
