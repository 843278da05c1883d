"""Logging set-up, called once by each process's entry point."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> None:
    """Send every logger's records to stderr in one readable format (LOG_LEVEL, default INFO: from
    the environment or `.env`, like every other setting)."""
    from shared.config import LoggingSettings

    logging.basicConfig(
        level=(level or LoggingSettings().log_level).upper(),
        format=FORMAT,
        force=True,
    )
