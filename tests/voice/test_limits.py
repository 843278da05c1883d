"""What the gateway accepts: voice off, files too large, who may set delivery notes; how long
audio is kept; and a transcription no worker takes in time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from sqlalchemy import select

from api.services import credentials
from shared.config import GatewaySettings, QueueSettings, VoiceSettings
from shared.db import Database
from shared.models import CredentialKind, TaskStatus, User, VoiceNote, utcnow
from shared.retention import purge_voice
from tests.conftest import make_client, wait_for
from tests.voice.test_pipeline import send_voice


def voice_client(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, **voice: Any
) -> TestClient:
    settings = VoiceSettings(_env_file=None).model_copy(update=voice)
    return make_client(gateway_settings, db_url, queue_settings, voice_settings=settings)


@pytest.fixture
def small_files(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings
) -> Iterator[TestClient]:
    with voice_client(gateway_settings, db_url, queue_settings, voice_max_bytes=20_000) as client:
        yield client


def test_voice_turned_off_is_refused_with_its_code(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, spoken: bytes
) -> None:
    with voice_client(gateway_settings, db_url, queue_settings, voice_enabled=False) as client:
        response = client.post("/api/chat/voice", data={"user_id": "u1"}, files={"file": ("n.ogg", spoken)})
        assert response.status_code == 503 and response.json()["code"] == "voice_disabled"


def test_a_file_over_the_limit_is_refused_and_others_still_pass(
    small_files: TestClient, spoken: bytes
) -> None:
    assert len(spoken) > 20_000
    refused = small_files.post("/api/chat/voice", data={"user_id": "u1"}, files={"file": ("n.ogg", spoken)})
    assert refused.status_code == 413 and refused.json()["code"] == "body_too_large"
    # A JSON body may still be no larger than MAX_BODY_BYTES: only the upload routes take more.
    big_json = small_files.post(
        "/api/chat", json={"user_id": "u1", "text": "x" * 3000, "pad": "y" * 1_100_000}
    )
    assert big_json.status_code == 413
    assert send_voice(
        small_files, spoken[:15_000]
    )  # a cut file is accepted here; the worker says it is broken


def test_a_person_sends_notes_as_themselves_and_may_not_set_delivery_notes(
    client: TestClient, db: Database, spoken: bytes
) -> None:
    token, _ = credentials.issue(db, "web:ann", CredentialKind.API, timedelta(days=1))
    del client.headers["X-API-Key"]
    person = {"Authorization": f"Bearer {token}"}
    files = {"file": ("n.ogg", spoken)}
    refused = client.post("/api/chat/voice", data={"client_meta": '{"chat": 1}'}, files=files, headers=person)
    assert refused.status_code == 403
    # Naming someone else changes nothing: the note is the sender's own.
    sent = client.post("/api/chat/voice", data={"user_id": "web:bob"}, files=files, headers=person)
    assert sent.status_code == 202
    with db.reading() as session:
        owner = session.scalar(select(User.external_id).join(VoiceNote, VoiceNote.user_id == User.id))
    assert owner == "web:ann"
    assert client.post("/api/chat/voice", files=files).status_code == 401


def test_audio_is_kept_only_as_long_as_the_setting_says(
    client: TestClient, db: Database, spoken: bytes
) -> None:
    send_voice(client, spoken)
    now = utcnow()
    with db.writing() as session:
        note = session.scalars(select(VoiceNote)).one()
        note.finished_at = now - timedelta(seconds=30)
        note.text = "heard"
    assert purge_voice(db, keep_seconds=60, now=now) == 0
    with db.reading() as session:
        assert session.scalar(select(VoiceNote.audio)) == spoken
    assert purge_voice(db, keep_seconds=10, now=now) == 1
    with db.reading() as session:
        assert session.scalar(select(VoiceNote.audio)) is None
        assert session.scalar(select(VoiceNote.text)) == "heard"


def test_audio_of_a_note_never_heard_goes_once_its_message_ended(
    client: TestClient, db: Database, spoken: bytes
) -> None:
    task_id = send_voice(client, spoken)
    client.post(f"/api/tasks/{task_id}/cancel")
    assert purge_voice(db, keep_seconds=0, now=utcnow() + timedelta(seconds=1)) == 1
    with db.reading() as session:
        assert session.scalar(select(VoiceNote.audio)) is None


def test_a_transcription_no_worker_takes_fails_at_the_job_timeout_and_a_late_worker_leaves_it(
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
    db: Database,
    queue: Queue,
    spoken: bytes,
    voice_jobs: Callable[[], None],
) -> None:
    # Nobody runs the queue: the gateway gives up after the job timeout (a second here).
    quick = queue_settings.model_copy(update={"job_timeout_seconds": 1})
    with make_client(gateway_settings, db_url, quick) as client:
        response = client.post("/v1/audio/transcriptions", files={"file": ("n.ogg", spoken)})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    with db.reading() as session:
        note = session.scalars(select(VoiceNote)).one()
        assert (note.status, note.error_code, note.audio) == (TaskStatus.FAILED, "timeout", None)
    # Its job is still queued; the worker that takes it at last finds the note ended and leaves it.
    assert queue.count == 1
    voice_jobs()
    with db.reading() as session:
        assert session.execute(select(VoiceNote.status, VoiceNote.text)).one() == (TaskStatus.FAILED, None)


def test_transcriptions_are_admitted_as_messages_are(
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
    db: Database,
    spoken: bytes,
) -> None:
    """One admission path: a transcription waiting for a worker counts as work in flight and takes
    a place in the queue, so with one answer in flight per person a second transcription, or a
    message, of the same person is refused; and a full queue refuses transcriptions too."""
    busy = gateway_settings.model_copy(update={"max_active_per_user": 1})
    # No worker runs here: Ann's transcription waits (3 s, the job timeout) while the rest is asked.
    waiting = queue_settings.model_copy(update={"job_timeout_seconds": 3, "max_queue_length": 2})
    people = {}
    for name in ("ann", "bob", "cid"):
        token, _ = credentials.issue(db, f"web:{name}", CredentialKind.API, timedelta(days=1))
        people[name] = {"Authorization": f"Bearer {token}"}

    def transcribe(client: TestClient, who: str) -> Any:
        return client.post("/v1/audio/transcriptions", files={"file": ("n.ogg", spoken)}, headers=people[who])

    with make_client(busy, db_url, waiting) as client:
        del client.headers["X-API-Key"]
        first: list[Any] = []
        ann = threading.Thread(target=lambda: first.append(transcribe(client, "ann")))
        ann.start()
        wait_for(lambda: _notes(db) == 1, timeout=30)

        again = transcribe(client, "ann")
        typed = client.post("/api/chat", json={"text": "hi"}, headers=people["ann"])
        assert again.status_code == 429 and again.json()["error"]["message"]
        assert typed.status_code == 429
        # Bob's message takes the queue's last place; Cid's transcription finds no room.
        assert client.post("/api/chat", json={"text": "hi"}, headers=people["bob"]).status_code == 202
        full = transcribe(client, "cid")
        assert full.status_code == 503 and full.json()["error"]["message"]
        ann.join()
    assert first[0].status_code == 504
    assert _notes(db) == 1


def _notes(db: Database) -> int:
    with db.reading() as session:
        return len(session.scalars(select(VoiceNote.id)).all())
