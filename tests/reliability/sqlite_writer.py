"""`python -m tests.reliability.sqlite_writer URL SECONDS`: write tasks' progress hard, as a worker does.

Prints how many writes it made and how many failed with "database is locked".
"""

from __future__ import annotations

import sys
import time

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from shared.config import DatabaseSettings
from shared.db import Database
from shared.models import Task, utcnow


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
        except OperationalError as exc:
            locked += "locked" in str(exc)
    print(f"writes={writes} locked={locked}", flush=True)


if __name__ == "__main__":
    main()
