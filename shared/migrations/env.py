"""Alembic environment: migrations run on an engine built like the application's (same pragmas)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event

from shared.config import DatabaseSettings
from shared.db import make_engine
from shared.models import Base

config = context.config


def _modelled(name: str | None, kind: str, _parents: Any) -> bool:
    """What the models describe: the passages' full-text index (migration 0012) is the database's
    own, an FTS5 table with its shadow tables in SQLite, an expression index in PostgreSQL."""
    if kind == "table" and name and name.startswith("document_passage_fts"):
        return False
    return not (kind == "index" and name == "ix_document_passage_terms")


url = config.attributes.get("database_url") or DatabaseSettings().database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(DatabaseSettings(database_url=url))
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a column by copying its table into a new one and dropping the old: with
        # foreign keys enforced, that drop would cascade to every row that points at the table
        # (a conversation's messages and tasks). Off for migrations only, checked afterwards.
        @event.listens_for(engine, "connect")
        def _no_cascades_while_migrating(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys = OFF")

    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            include_name=_modelled,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows pointing nowhere: {broken[:5]}")
    engine.dispose()
