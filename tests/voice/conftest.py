"""Voice notes spoken on this machine (espeak-ng) and the bundled tiny.en speech model, loaded once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
from rq import Queue, SimpleWorker

from fakes import speech
from shared.config import ModelSettings, VoiceSettings, WorkerSettings
from shared.db import Database
from shared.jobs import announce_change
from tests.fakes import FakeChatModel
from worker import tasks
from worker.reply import ReplyService
from worker.speech import Transcriber
from worker.voice import VoiceWork

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="session")
def spoken() -> bytes:
    """QUESTION, spoken by espeak-ng, as a Telegram voice note (Opus in OGG)."""
    if not speech.espeak_available():
        pytest.fail("espeak-ng is missing: apt-get install espeak-ng (make test does)")
    return speech.speak(QUESTION)


@pytest.fixture(scope="session")
def transcriber() -> Transcriber:
    # Notes over 20 s are refused, so that a "too long" note is quick to make and to decode.
    return Transcriber(VoiceSettings(_env_file=None, stt_max_seconds=20))


@pytest.fixture
def voice_jobs(
    db: Database,
    queue: Queue,
    transcriber: Transcriber,
    fake_model: FakeChatModel,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> Iterator[Callable[[], None]]:
    """Run every queued job in this process with the real speech model (and the scripted chat one)."""
    announce = partial(announce_change, queue)
    voice = VoiceWork(db, transcriber, "test-worker", announce)
    service = ReplyService(
        db, fake_model, model_settings, worker_settings, "test-worker", announce=announce, voice=voice
    )

    def run() -> None:
        SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(
            burst=True, logging_level="WARNING"
        )

    tasks.install(service)
    yield run
    tasks.install(None)
