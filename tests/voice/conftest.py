"""Voice notes spoken on this machine (espeak-ng, Festival for Russian) and the speech models, each
loaded once: the default multilingual base, and the English-only tiny.en."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
from rq import Queue

from fakes import speech
from shared.config import ModelSettings, VoiceSettings, WorkerSettings
from shared.db import Database
from shared.jobs import announce_change
from tests.conftest import MODELS, run_queued_jobs
from tests.fakes import FakeChatModel
from worker import tasks
from worker.reply import ReplyService
from worker.speech import Transcriber
from worker.voice import VoiceWork

QUESTION = "What is the capital of France?"
RUSSIAN_QUESTION = "Скажите, пожалуйста, как называется столица Франции?"


@pytest.fixture(scope="session")
def spoken() -> bytes:
    """QUESTION, spoken by espeak-ng, as a Telegram voice note (Opus in OGG)."""
    if not speech.espeak_available():
        pytest.fail("espeak-ng is missing: apt-get install espeak-ng (make test does)")
    return speech.speak(QUESTION)


@pytest.fixture(scope="session")
def spoken_ru() -> bytes:
    """RUSSIAN_QUESTION, spoken by Festival's Russian voice, as a Telegram voice note."""
    if not speech.russian_available():
        pytest.fail(
            "Festival's Russian voice is missing: apt-get install festival festvox-ru (make test does)"
        )
    return speech.speak(RUSSIAN_QUESTION, language="ru")


@pytest.fixture(scope="session")
def transcriber() -> Transcriber:
    # Notes over 20 s are refused, so that a "too long" note is quick to make and to decode.
    return Transcriber(VoiceSettings(_env_file=None, stt_max_seconds=20), download_root=MODELS)


@pytest.fixture(scope="session")
def english_only() -> Transcriber:
    """tiny.en: still an option (faster, English only)."""
    return Transcriber(VoiceSettings(_env_file=None, stt_model="tiny.en", stt_max_seconds=20))


@pytest.fixture
def install_voice(
    db: Database,
    queue: Queue,
    fake_model: FakeChatModel,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> Iterator[Callable[[Transcriber], Callable[[], None]]]:
    """Make this process's jobs use `transcriber` (and the scripted chat model); returns what runs them."""

    def install(transcriber: Transcriber) -> Callable[[], None]:
        announce = partial(announce_change, queue)
        voice = VoiceWork(db, transcriber, "test-worker", announce)
        service = ReplyService(
            db, fake_model, model_settings, worker_settings, "test-worker", announce=announce, voice=voice
        )
        tasks.install(service)
        return partial(run_queued_jobs, queue)

    yield install
    tasks.install(None)


@pytest.fixture
def voice_jobs(
    install_voice: Callable[[Transcriber], Callable[[], None]], transcriber: Transcriber
) -> Callable[[], None]:
    """Run every queued job in this process with the real speech model (and the scripted chat one)."""
    return install_voice(transcriber)
