"""Apply database migrations: `python -m shared.migrate` (run by `make run` before the services start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.config import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def main() -> None:
    url = DatabaseSettings().database_url
    upgrade(url)
    print("Database is up to date.")


if __name__ == "__main__":
    main()
