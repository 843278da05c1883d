"""The lock files hold what requirements*.txt name, at the same versions, each with its hashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    return {_name(name): version for name, version in _PIN.findall(path.read_text())}


def _entries(lock: Path) -> list[str]:
    """The lock's entries: a pin with its continuation lines."""
    return re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().strip())


@pytest.mark.parametrize(
    ("chosen", "lock"),
    [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")],
)
def test_every_chosen_pin_is_locked_at_its_version(chosen: str, lock: str) -> None:
    wanted = _pins(ROOT / chosen)
    if chosen == "requirements-dev.txt":  # it includes the others with -r
        wanted |= _pins(ROOT / "requirements.txt") | _pins(ROOT / "requirements-bench.txt")
    locked = _pins(ROOT / lock)
    assert {name: locked.get(name) for name in wanted} == wanted, f"run `make lock` after editing {chosen}"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_package_has_hashes(lock: str) -> None:
    entries = [entry for entry in _entries(ROOT / lock) if not entry.startswith("#")]
    assert len(entries) > 50
    for entry in entries:
        assert "==" in entry.splitlines()[0], entry
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry


def test_the_runtime_lock_agrees_with_the_dev_lock() -> None:
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
