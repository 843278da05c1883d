"""Engine and session factories.

SQLite gets its pragmas on every new connection, and write transactions start with
`BEGIN IMMEDIATE`: a deferred transaction that reads and then writes can fail with
"database is locked" at once, whatever the busy timeout, when another writer got there first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.config import DatabaseSettings

_IMMEDIATE = "sqlite_begin_immediate"
log = logging.getLogger(__name__)


def private_file(path: Path) -> None:
    """Make `path` (created empty if missing), and any -wal and -shm files beside it, readable and
    writable by their owner only: a database or a backup holds everything people wrote."""
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            fd = os.open(file, os.O_RDONLY | (os.O_CREAT if file == path else 0), 0o600)
        except FileNotFoundError:
            continue
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
        except PermissionError:
            log.warning("%s is not ours to make private (mode %o)", file, os.fstat(fd).st_mode & 0o777)
        finally:
            os.close(fd)


def make_engine(settings: DatabaseSettings) -> Engine:
    """Create an engine for DATABASE_URL; call it in the process that will use it (never across fork)."""
    url = settings.database_url
    # hide_parameters: a failing statement's message (logged, perhaps shown in a traceback) must not
    # quote what people wrote, which travels as the statement's parameters.
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)

    engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite gives its -wal and -shm files the database file's mode.
        private_file(Path(database))
    busy_timeout = int(settings.sqlite_busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own transaction handling would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Deleted conversations are overwritten on disk, not left readable in free pages.
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Session factories over one engine: plain ones for reads, immediate ones for writes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._disposed = False
        # A connection still checked out when the engine is disposed (a read in another thread) goes
        # back to the pool it came from, which nobody uses again: closed there, not left open until
        # the garbage collector finds it (PostgreSQL would keep its session meanwhile).
        event.listen(engine, "checkin", self._close_if_disposed)
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> Database:
        return cls(make_engine(settings))

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only; nothing it does is committed."""
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends and rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self._disposed = True
        self.engine.dispose()

    def _close_if_disposed(self, dbapi_connection: Any, _record: Any) -> None:
        if self._disposed and dbapi_connection is not None:
            dbapi_connection.close()
