"""Logging set-up, called once by each process's entry point."""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> None:
    """Send every logger's records to stderr in one readable format (LOG_LEVEL, default INFO)."""
    logging.basicConfig(
        level=(level or os.environ.get("LOG_LEVEL", "INFO")).upper(),
        format=FORMAT,
        force=True,
    )
