"""`make audit`: skipped only, and loudly, where PyPI's vulnerability records cannot be reached."""

from __future__ import annotations

import subprocess

import pytest

from deploy import audit


def test_an_unreachable_vulnerability_service_is_said_and_may_be_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "PROBE", "http://127.0.0.1:9/pypi/pip/24.0/json")  # nothing listens
    monkeypatch.delenv("AUDIT_REQUIRED", raising=False)
    assert audit.main("requirements-dev.lock") == 0
    assert "audit skipped" in capsys.readouterr().err
    monkeypatch.setenv("AUDIT_REQUIRED", "1")
    assert audit.main("requirements-dev.lock") == 1


def test_a_reachable_service_runs_pip_audit_strictly_on_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def call(command: list[str]) -> int:
        ran.append(command)
        return 3

    monkeypatch.setattr(audit, "service_answers", lambda: True)
    monkeypatch.setattr(subprocess, "call", call)
    assert audit.main("requirements-dev.lock") == 3  # its verdict is ours
    (command,) = ran
    assert command[1:4] == ["-m", "pip_audit", "--strict"] and command[-2:] == ["-r", "requirements-dev.lock"]
