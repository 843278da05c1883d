"""Settings: every variable documented in .env.example, empty values ignored, bad values refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from shared.config import (
    BotSettings,
    DatabaseSettings,
    DocumentSettings,
    GatewaySettings,
    LoggingSettings,
    ModelSettings,
    QueueSettings,
    VoiceSettings,
    WorkerSettings,
)
from stack.__main__ import StackSettings
from tests.conftest import ROOT

SETTINGS: list[type[BaseSettings]] = [
    GatewaySettings,
    DocumentSettings,
    DatabaseSettings,
    QueueSettings,
    ModelSettings,
    WorkerSettings,
    VoiceSettings,
    StackSettings,
    BotSettings,
    LoggingSettings,
]


def test_env_example_documents_every_variable() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    # Plus REDIS_PASSWORD (docker compose only).
    expected = {name.upper() for cls in SETTINGS for name in cls.model_fields} | {"REDIS_PASSWORD"}
    assert documented == expected
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if re.match(r"^#?[A-Z][A-Z0-9_]+=", line) and not re.match(r"^#?[A-Z][A-Z0-9_]+=", lines[n - 1]):
            assert lines[n - 1].startswith("# "), f"{line} has no comment above it"


def test_every_field_has_a_description() -> None:
    missing = [
        f"{cls.__name__}.{name}"
        for cls in SETTINGS
        for name, f in cls.model_fields.items()
        if not f.description
    ]
    assert missing == []


def test_a_copied_env_example_gives_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text() + "\nMODEL_PATH=\nN_THREADS=\n")
    monkeypatch.chdir(tmp_path)
    assert ModelSettings().model_path is None
    assert ModelSettings().n_threads is None
    assert GatewaySettings().api_key is None


def test_a_short_api_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        GatewaySettings(_env_file=None, api_key="short")


def test_id_lists_are_read_as_people_write_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", "12, 34,56")
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", "[7]")
    settings = BotSettings(_env_file=None)
    assert settings.telegram_allowed_users == [12, 34, 56]
    assert settings.telegram_admin_ids == [7]


def test_log_level_comes_from_env_file_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from shared.logging import configure_logging

    (tmp_path / ".env").write_text("LOG_LEVEL=WARNING\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    configure_logging()
    try:
        assert logging.getLogger().level == logging.WARNING
    finally:
        configure_logging("INFO")
