"""SQLite under pressure: two processes writing hard, and writers killed in the middle of writing."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from shared.db import Database
from tests.conftest import ROOT, sqlite_only
from tests.reliability.sqlite_writer import PRAGMAS

pytestmark = [pytest.mark.slow, sqlite_only]


def _writer(db_url: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.sqlite_writer", db_url, str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_gateway_and_worker_writing_at_once_never_hit_locked(
    client: TestClient, db_url: str, db: Database
) -> None:
    """Figure held: hundreds of writes from each of two processes, 0 "database is locked"; every
    connection of both engines (several at once here, one in the other process) reports WAL, a
    busy timeout and foreign keys on."""
    for n in range(5):
        client.post("/api/chat", json={"user_id": f"s{n}", "text": "seed"})
    worker_like = _writer(db_url, 4)
    accepted, failures = 0, []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        response = client.post("/api/chat", json={"user_id": f"g{accepted % 9}", "text": "write"})
        if response.status_code == 202:
            accepted += 1
        else:
            failures.append(response.text)
    out, _ = worker_like.communicate(timeout=30)
    report = dict(part.split("=") for part in out.splitlines()[-1].split())

    assert failures == [] and accepted > 50, (accepted, failures[:3])
    assert int(report["writes"]) > 100 and int(report["locked"]) == 0, out
    assert report["pragmas"] == "wal,10000,1", out
    with db.reading() as a, db.reading() as b, db.writing() as c:
        for session in (a, b, c):
            pragmas = [session.execute(text(f"PRAGMA {name}")).scalar() for name in PRAGMAS]
            assert pragmas == ["wal", 10_000, 1]


def test_writers_killed_mid_write_never_corrupt_the_database(client: TestClient, db_url: str) -> None:
    """Figure held: 20 writers killed with SIGKILL while writing, integrity_check "ok" after each."""
    for n in range(5):
        client.post("/api/chat", json={"user_id": f"k{n}", "text": "seed"})
    path = Path(db_url.removeprefix("sqlite:///"))
    for _ in range(20):
        writer = _writer(db_url, 30)
        assert writer.stdout is not None
        # Killed only once it is known to be in its write loop (it writes without pause from then on).
        assert writer.stdout.readline().strip() == "writing"
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # And the service goes on writing.
    assert client.post("/api/chat", json={"user_id": "after", "text": "still fine?"}).status_code == 202
