"""Backup and restore of the SQLite database: `make backup`, `make restore FILE=…`.

A backup uses SQLite's online backup API, so it is consistent while the gateway and workers write.
Backups hold everything people wrote: they and their folder are for the owner alone (0600, 0700),
and they are kept BACKUP_KEEP_DAYS, not forever: each backup or restore deletes the older ones (the
copy a restore makes of the database it replaces included), so what a person asked to have deleted
is gone from every copy within that time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from shared.config import DatabaseSettings
from shared.db import private_file

BACKUPS = Path("data/backups")


class BackupError(Exception):
    pass


def sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupError("This backs up SQLite databases; for PostgreSQL use pg_dump.")
    return Path(url.database)


def integrity(path: Path) -> str:
    """SQLite's own verdict on a database file: "ok", or what is wrong with it."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return str(exc)


def backup(database_url: str, dest_dir: Path) -> Path:
    """Copy the live database to `dest_dir/ai_assistant-<UTC time>.db` and check the copy."""
    source = sqlite_path(database_url)
    if not source.is_file():
        raise BackupError(f"No database at {source}.")
    return _copy(source, dest_dir, source.stem)


def _copy(source: Path, dest_dir: Path, stem: str) -> Path:
    dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest_dir, 0o700)  # an older folder, made before backups were kept private
    target = dest_dir / f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.db"
    private_file(target)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        with dst:
            # Pages are copied in steps, so writers are held up only for moments.
            src.backup(dst, pages=1024, sleep=0.005)
    finally:
        dst.close()
        src.close()
    if (result := integrity(target)) != "ok":
        raise BackupError(f"The backup {target} failed its integrity check: {result}")
    return target


def prune(backups: Path, keep_days: int, now: datetime | None = None) -> list[Path]:
    """Delete the backups in `backups` written more than `keep_days` ago; returns what went."""
    if not backups.is_dir():
        return []
    cutoff = (now or datetime.now(UTC)).timestamp() - keep_days * 86400
    gone = [path for path in sorted(backups.glob("*.db")) if path.stat().st_mtime < cutoff]
    for path in gone:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return gone


def restore(database_url: str, backup_file: Path, backups: Path = BACKUPS) -> Path | None:
    """Put `backup_file` in place of the database (stop the stack first). The database it replaces
    is first backed up into `backups`, like any backup; returns that copy (None if there was none)."""
    target = sqlite_path(database_url)
    if (result := integrity(backup_file)) != "ok":
        raise BackupError(f"{backup_file} is damaged ({result}); nothing was changed.")
    previous = _copy(target, backups, f"{target.stem}-before-restore") if target.exists() else None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    private_file(target)
    shutil.copyfile(backup_file, target)
    if (result := integrity(target)) != "ok":
        raise BackupError(
            f"The restored database failed its integrity check ({result}); {previous} holds the one before."
        )
    return previous


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stack.backup", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup").add_argument("--dest", type=Path, default=BACKUPS)
    commands.add_parser("restore").add_argument("file", type=Path)
    args = parser.parse_args()
    settings = DatabaseSettings()
    url = settings.database_url
    try:
        if args.command == "backup":
            print(f"Backup written: {backup(url, args.dest)}")
            folder = args.dest
        else:
            previous = restore(url, args.file)
            kept = f" The database it replaced is backed up as {previous}." if previous else ""
            print(f"Restored {args.file}.{kept}")
            folder = BACKUPS
    except BackupError as exc:
        raise SystemExit(str(exc)) from None
    for path in prune(folder, settings.backup_keep_days):
        print(f"Deleted {path}: older than {settings.backup_keep_days} days (BACKUP_KEEP_DAYS).")


if __name__ == "__main__":
    main()
