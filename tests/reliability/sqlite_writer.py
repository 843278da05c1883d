"""`python -m tests.reliability.sqlite_writer URL SECONDS`: write tasks' progress hard, as a worker does.

Prints "writing" once its first write is committed (it keeps writing), then at the end how many
writes it made, how many failed with "database is locked", and the pragmas its own
connection reported (journal mode, busy timeout, foreign keys).
"""

from __future__ import annotations

import sys
import time

from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from shared.config import DatabaseSettings
from shared.db import Database
from shared.models import Task, utcnow

PRAGMAS = ("journal_mode", "busy_timeout", "foreign_keys")


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    db = Database.from_settings(DatabaseSettings(_env_file=None, database_url=url))
    writes = locked = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with db.writing() as session:
                session.execute(update(Task).values(partial_text=f"progress {writes}", heartbeat_at=utcnow()))
            writes += 1
            if writes == 1:
                print("writing", flush=True)  # the test's signal: the loop is under way
        except OperationalError as exc:
            locked += "locked" in str(exc)
    with db.reading() as session:
        pragmas = [session.execute(text(f"PRAGMA {name}")).scalar() for name in PRAGMAS]
    print(f"writes={writes} locked={locked} pragmas={','.join(map(str, pragmas))}", flush=True)


if __name__ == "__main__":
    main()
