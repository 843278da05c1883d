"""Model presets downloaded from a hub served on loopback (HF_ENDPOINT), with the bundled model file:
a transfer cut short resumes, a file whose hash is not the hub's is refused, and so is a file that
changed on disk after it was downloaded."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.hub import FakeHub
from shared.config import ModelSettings
from shared.model_files import GGUF_MAGIC, record_path
from shared.presets import PRESETS, catalogue
from tests.conftest import TINY_MODEL
from worker.model_source import ModelUnavailable, resolve_model_path

PRESET = PRESETS["qwen2.5-0.5b"]
assert PRESET.repo is not None
REPO = PRESET.repo


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    served = FakeHub().start()
    # The hub client reads its address when imported; the download passes it on each call.
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    yield served
    served.stop()


@pytest.fixture
def model_bytes() -> bytes:
    if not TINY_MODEL.is_file():
        pytest.fail(f"{TINY_MODEL} is missing: run `make model` (make test does)")
    return TINY_MODEL.read_bytes()


def _settings(models: Path) -> ModelSettings:
    return ModelSettings(_env_file=None, model_preset=PRESET.name, models_dir=models)


def test_a_preset_is_downloaded_resumed_after_a_cut_and_recorded(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, PRESET.file, model_bytes)
    hub.cut_after = [len(model_bytes) // 3]  # the first transfer breaks a third of the way in
    path = resolve_model_path(_settings(tmp_path))
    assert path == tmp_path / PRESET.file
    assert path.read_bytes() == model_bytes
    assert hub.ranges[0] == 0 and hub.ranges[-1] > 0  # it went on from where it broke
    assert sum(1 for start in hub.ranges if start == 0) == 1  # never from the beginning again
    recorded = record_path(path).read_text()
    assert '"sha256"' in recorded

    # Loaded again: nothing downloaded, the recorded hash still holds.
    transfers = len(hub.ranges)
    assert resolve_model_path(_settings(tmp_path)) == path
    assert len(hub.ranges) == transfers


def test_a_download_whose_hash_is_not_the_hubs_is_refused(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, PRESET.file, model_bytes, announced_sha256="ab" * 32)
    with pytest.raises(ModelUnavailable, match="does not match the hub's SHA-256"):
        resolve_model_path(_settings(tmp_path))
    assert not (tmp_path / PRESET.file).exists()  # nothing half-trusted is left to load


def test_a_pinned_revision_and_hash_hold_whatever_the_hub_announces(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    """MODEL_REVISION is what is asked for; MODEL_SHA256 is what the file must be, even when the hub
    announces the same wrong hash its bytes have (a hub, or whoever answers as one, that changed the
    file); and a kept file that is not the pinned one is refused at the next start."""
    import hashlib

    commit = "9" * 40
    good = hashlib.sha256(model_bytes).hexdigest()
    hub.add("someone/model-GGUF", "model.gguf", model_bytes)

    def pinned(sha256: str) -> ModelSettings:
        return ModelSettings(
            _env_file=None,
            model_repo="someone/model-GGUF",
            model_file="model.gguf",
            model_revision=commit,
            model_sha256=sha256,
            models_dir=tmp_path,
        )

    path = resolve_model_path(pinned(good))
    assert path.read_bytes() == model_bytes
    asked = [r for r in hub.requests if "/resolve/" in r]
    assert asked and all(f"/resolve/{commit}/model.gguf" in r for r in asked)

    # The same bytes with another pin: refused at once, from the kept file.
    with pytest.raises(ModelUnavailable, match="is not the pinned file"):
        resolve_model_path(pinned("0" * 64))
    # A hub that serves other bytes (announcing their own, matching hash) is refused against the pin.
    path.unlink()
    record_path(path).unlink()
    hub.add("someone/model-GGUF", "model.gguf", model_bytes + b"\0")
    with pytest.raises(ModelUnavailable, match="does not match the pinned SHA-256"):
        resolve_model_path(pinned(good))
    assert not path.exists()


def test_a_file_changed_after_its_download_is_refused(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, PRESET.file, model_bytes)
    path = resolve_model_path(_settings(tmp_path))
    damaged = bytearray(model_bytes)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped bit, same size
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelUnavailable, match="changed since it was downloaded"):
        resolve_model_path(_settings(tmp_path))
    # Touched but unchanged: accepted (and not hashed again next time).
    path.write_bytes(model_bytes)
    os.utime(path)
    assert resolve_model_path(_settings(tmp_path)) == path


def test_a_file_that_is_not_gguf_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    hub.add(REPO, PRESET.file, b"<html>not a model</html>" * 100)
    with pytest.raises(ModelUnavailable, match="not a GGUF model"):
        resolve_model_path(_settings(tmp_path))
    assert GGUF_MAGIC == b"GGUF"


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=re.escape("qwen2.5-1.5b")):
        ModelSettings(_env_file=None, model_preset="gpt-5")
    assert PRESET.name in catalogue()


def test_offline_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ModelUnavailable, match="internet access"):
        resolve_model_path(_settings(tmp_path))


def test_make_model_with_a_preset_downloads_it_and_remembers_it(
    hub: FakeHub,
    model_bytes: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stack.model import main

    hub.add(REPO, PRESET.file, model_bytes)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("API_KEY=kept\nMODEL_PRESET=llama-3.2-1b\n")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("VOICE_ENABLED", "false")  # the speech model is another test's
    main(["--preset", PRESET.name])
    assert (tmp_path / "models" / PRESET.file).read_bytes() == model_bytes
    assert (tmp_path / ".env").read_text() == f"API_KEY=kept\nMODEL_PRESET={PRESET.name}\n"
    assert "Model ready" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="Unknown preset"):
        main(["--preset", "nope"])
    main(["--preset", "list"])
    assert "vikhr-qwen2.5-1.5b" in capsys.readouterr().out
