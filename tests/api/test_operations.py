"""Operating it: Prometheus metrics, backups while running, retention and "forget me"."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from shared.db import Database
from shared.models import Conversation, Message, Task, User, utcnow
from shared.retention import purge_conversations
from stack.backup import BackupError, backup, integrity, prune, restore, sqlite_path
from tests.conftest import sqlite_only


def _send(client: TestClient, text: str, user: str = "ops") -> str:
    task_id: str = client.post("/api/chat", json={"user_id": user, "text": text}).json()["task_id"]
    return task_id


def test_metrics_in_prometheus_format(client: TestClient, run_jobs: Callable[[], None]) -> None:
    for n in range(3):
        _send(client, f"m{n}", user=f"u{n}")
    run_jobs()
    _send(client, "waiting")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = dict(
        line.rsplit(" ", 1) for line in response.text.splitlines() if line and not line.startswith("#")
    )
    assert lines['ai_assistant_tasks{status="finished"}'] == "3"
    assert lines["ai_assistant_queue_length"] == "1"
    assert lines["ai_assistant_workers"] == "0"
    assert float(lines["ai_assistant_generation_tokens_per_second"]) > 0
    assert lines["ai_assistant_queue_wait_seconds_count"] == "3"
    assert 'ai_assistant_end_to_end_seconds{quantile="0.95"}' in lines
    assert "# TYPE ai_assistant_end_to_end_seconds summary" in response.text
    client.headers.clear()
    assert client.get("/metrics").status_code == 401


@sqlite_only
def test_backup_while_writing_is_consistent_and_restores(
    client: TestClient, db: Database, db_url: str, tmp_path: Path
) -> None:
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            _send(client, f"busy {n}", user=f"writer{n % 5}")
            n += 1
        written.append(n)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        copies = [backup(db_url, tmp_path / "backups") for _ in range(5)]
    finally:
        stop.set()
        writer.join()

    assert written[0] > 0
    for copy in copies:
        assert integrity(copy) == "ok"
        with sqlite3.connect(copy) as conn:
            tasks, messages = conn.execute(
                "SELECT (SELECT count(*) FROM task), (SELECT count(*) FROM message)"
            ).fetchone()
        # Each task has its message: the copy is a consistent moment, not a torn one.
        assert tasks == messages

    db.dispose()
    with sqlite3.connect(copies[0]) as conn:
        expected = conn.execute("SELECT count(*) FROM task").fetchone()[0]
    live = sqlite_path(db_url)
    previous = restore(db_url, copies[0], backups=tmp_path / "backups")
    # The database it replaced became a backup like the others, not a copy left beside the live one.
    assert previous is not None and previous.parent == tmp_path / "backups" and integrity(previous) == "ok"
    assert not list(live.parent.glob(f"{live.name}.before-restore*"))
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == expected
    # Everything people wrote is for the owner alone: the database, its journal, backups, their folder.
    for path in [live, *live.parent.glob(f"{live.name}-wal"), previous, *copies]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700


def test_backup_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="pg_dump"):
        backup("postgresql+psycopg://u@h/db", tmp_path)
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(BackupError):
        restore(f"sqlite:///{tmp_path / 'live.db'}", damaged)


@sqlite_only
def test_backups_are_kept_their_stated_time_the_restores_leftover_included(
    db_url: str, tmp_path: Path
) -> None:
    """`make backup` and `make restore` delete backups older than BACKUP_KEEP_DAYS, the copy a
    restore made of the database it replaced among them: a deletion reaches every copy in time."""
    folder = tmp_path / "backups"
    first = backup(db_url, folder)
    replaced = restore(db_url, first, backups=folder)
    fresh = backup(db_url, folder)
    assert replaced is not None
    month_ago = time.time() - 30 * 86400
    for old in (first, replaced):
        os.utime(old, (month_ago, month_ago))
    assert sorted(prune(folder, keep_days=14)) == sorted([first, replaced])
    assert sorted(folder.glob("*.db")) == [fresh]
    assert not [p for p in folder.iterdir() if p.name.startswith((first.name, replaced.name))]
    assert prune(tmp_path / "none-yet", keep_days=14) == []


def test_retention_deletes_only_old_idle_conversations(
    client: TestClient, db: Database, run_jobs: Callable[[], None]
) -> None:
    _send(client, "old", user="a")
    run_jobs()
    _send(client, "recent", user="b")
    run_jobs()
    old_but_busy = _send(client, "old and waiting", user="c")
    long_ago = utcnow() - timedelta(days=40)
    with db.writing() as session:
        for user in ("a", "c"):
            user_id = select(User.id).where(User.external_id == user).scalar_subquery()
            conversations = select(Conversation.id).where(Conversation.user_id == user_id)
            session.execute(
                update(Message).where(Message.conversation_id.in_(conversations)).values(created_at=long_ago)
            )

    assert purge_conversations(db, older_than_days=30) == 1

    assert client.get("/api/users/a/history").json() == []
    assert [h["question"] for h in client.get("/api/users/b/history").json()] == ["recent"]
    assert client.get(f"/api/status/{old_but_busy}").json()["status"] == "queued"


def test_forget_me_deletes_everything_about_a_user(
    client: TestClient, db: Database, run_jobs: Callable[[], None]
) -> None:
    _send(client, "remember this secret", user="forgetful")
    run_jobs()
    client.put("/api/users/forgetful/persona", json={"persona": "teacher"})
    pending = _send(client, "and this", user="forgetful")
    _send(client, "keep me", user="other")

    assert client.delete("/api/users/forgetful").status_code == 204

    with db.reading() as session:
        assert session.scalar(select(func.count()).where(User.external_id == "forgetful")) == 0
        contents = set(session.scalars(select(Message.content)))
    assert not any("secret" in c or c == "and this" for c in contents)
    assert "keep me" in contents
    assert client.get(f"/api/status/{pending}").status_code == 404
    assert client.delete("/api/users/forgetful").status_code == 404
    run_jobs()  # the forgotten user's queued job finds nothing to do
    assert client.get("/api/users/other/history").json()[0]["status"] == "finished"
