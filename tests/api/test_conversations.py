"""Conversations a person manages, their own instructions, exports and token quotas (gateway + worker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.services import credentials
from api.services.users import get_or_create_user
from api.services.voice_notes import Upload, add_note
from shared.config import GatewaySettings, QueueSettings
from shared.db import Database
from shared.models import CredentialKind, TaskStatus, VoiceNote
from shared.titles import TITLE_FROM_MESSAGE_CHARS, title_from
from tests.conftest import API_KEY, BOT_API_KEY, make_client
from tests.fakes import FakeChatModel


def _send(client: TestClient, text: str, user: str = "u1", chat: str | None = None) -> str:
    body = {"user_id": user, "text": text, **({"chat_id": chat} if chat else {})}
    response = client.post("/api/chat", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _bearer(db: Database, user_id: str) -> dict[str, str]:
    token, _ = credentials.issue(db, user_id, CredentialKind.API, timedelta(days=1))
    return {"Authorization": f"Bearer {token}"}


def _listed(client: TestClient, user: str = "u1", **params: str) -> list[dict[str, object]]:
    response = client.get(f"/api/users/{user}/conversations", params=params)
    assert response.status_code == 200, response.text
    listed: list[dict[str, object]] = response.json()
    return listed


def test_two_conversations_listed_switched_between_each_keeping_its_history(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    _send(client, "Tell me about volcanoes")
    run_jobs()
    client.post("/api/conversations", json={"user_id": "u1"})
    _send(client, "And now about the sea, please, with many details about waves and tides and ships")
    run_jobs()

    first, second = _listed(client)[::-1]
    assert [c["current"] for c in (second, first)] == [True, False]
    assert first["title"] == "Tell me about volcanoes" and first["messages"] == 1
    assert str(second["title"]).endswith("…") and len(str(second["title"])) <= TITLE_FROM_MESSAGE_CHARS + 1

    # Back to the first: the next message continues it, and sees its answer, not the other one's.
    assert client.post(f"/api/conversations/{first['conversation_id']}/activate").status_code == 204
    assert [c["conversation_id"] for c in _listed(client)] == [
        first["conversation_id"],
        second["conversation_id"],
    ]
    task_id = _send(client, "more volcanoes")
    run_jobs()
    assert (
        client.get(f"/api/status/{task_id}").json()["answer"]
        == "Answer 2 to 'more volcanoes' (saw 1 answers)"
    )
    asked = [m["content"] for m in fake_model.prompts[-1] if m["role"] == "user"]
    assert asked == ["Tell me about volcanoes", "more volcanoes"]
    history = client.get("/api/users/u1/history").json()
    assert [h["question"] for h in history] == ["Tell me about volcanoes", "more volcanoes"]

    renamed = client.patch(
        f"/api/conversations/{first['conversation_id']}", json={"title": " Fire mountains "}
    )
    assert renamed.status_code == 204
    assert _listed(client)[0]["title"] == "Fire mountains"

    # Deleting the current one makes the other current again.
    assert client.delete(f"/api/conversations/{first['conversation_id']}").status_code == 204
    assert [c["conversation_id"] for c in _listed(client)] == [second["conversation_id"]]
    assert client.get("/api/users/u1/history").json()[0]["question"].startswith("And now about the sea")


def test_a_conversation_being_answered_is_not_deleted(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    _send(client, "pending")
    (conversation,) = _listed(client)
    refused = client.delete(f"/api/conversations/{conversation['conversation_id']}")
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    run_jobs()
    assert client.delete(f"/api/conversations/{conversation['conversation_id']}").status_code == 204
    assert _listed(client) == []


def test_lists_are_per_chat(client: TestClient, run_jobs: Callable[[], None]) -> None:
    _send(client, "in the private chat", chat="100")
    _send(client, "in a forum topic", chat="-200/7")
    run_jobs()
    assert [c["title"] for c in _listed(client, chat_id="100")] == ["in the private chat"]
    assert [c["title"] for c in _listed(client, chat_id="-200/7")] == ["in a forum topic"]


def test_export_matches_the_history(client: TestClient, run_jobs: Callable[[], None]) -> None:
    for text in ("first question", "second *question*"):
        _send(client, text)
        run_jobs()
    (conversation,) = _listed(client)
    path = f"/api/conversations/{conversation['conversation_id']}/export"

    as_json = client.get(path, params={"format": "json"})
    assert as_json.status_code == 200
    exported = as_json.json()
    history = client.get("/api/users/u1/history").json()
    assert [(e["question"], e["answer"]) for e in exported["exchanges"]] == [
        (h["question"], h["answer"]) for h in history
    ]

    as_markdown = client.get(path, params={"lang": "ru"})
    assert as_markdown.headers["content-type"].startswith("text/markdown")
    assert "attachment" in as_markdown.headers["content-disposition"]
    text = as_markdown.text
    assert text.startswith("# first question\n")
    for h in history:
        assert h["question"] in text and h["answer"] in text
    assert text.index("first question\n\n**Ассистент**") < text.index("second *question*")

    everything = client.get("/api/users/u1/export").json()
    assert everything["user_id"] == "u1"
    assert everything["conversations"][0]["exchanges"] == exported["exchanges"]
    assert client.get("/api/users/nobody/export").status_code == 404


def test_a_persons_export_keeps_answers_replaced_by_regenerating_and_their_transcriptions(
    client: TestClient, run_jobs: Callable[[], None], db: Database
) -> None:
    """The data access export promises everything kept: an answer asked again stays in the database,
    so it is there (marked), and so are transcriptions made on their own, heard or still waiting."""
    first = _send(client, "what is kept?")
    run_jobs()
    assert client.post(f"/api/tasks/{first}/regenerate").status_code == 202
    run_jobs()
    with db.writing() as session:
        user = get_or_create_user(session, "u1")
        heard = add_note(session, user, None, Upload(b"audio", "ru"))
        waiting = add_note(session, user, None, Upload(b"more audio"))
        note = session.get_one(VoiceNote, heard)
        note.status, note.text, note.audio, note.detected_language = TaskStatus.FINISHED, "привет", None, "ru"

    everything = client.get("/api/users/u1/export").json()
    exchanges = everything["conversations"][0]["exchanges"]
    assert [(e["question"], e["superseded"]) for e in exchanges] == [
        ("what is kept?", True),
        ("what is kept?", False),
    ]
    assert exchanges[0]["task_id"] == first and exchanges[0]["answer"]
    # The history a model sees, and a conversation's own export, are what the conversation reads now.
    assert len(client.get("/api/users/u1/history").json()) == 1
    assert (
        len(
            client.get(
                f"/api/conversations/{everything['conversations'][0]['conversation_id']}/export",
                params={"format": "json"},
            ).json()["exchanges"]
        )
        == 1
    )
    transcriptions = {t["transcription_id"]: t for t in everything["transcriptions"]}
    assert transcriptions.keys() == {heard, waiting}
    assert transcriptions[heard]["text"] == "привет" and not transcriptions[heard]["audio_kept"]
    assert transcriptions[waiting]["status"] == "queued" and transcriptions[waiting]["audio_kept"]
    assert transcriptions[waiting]["text"] is None


def test_own_instructions_follow_the_operators_and_cannot_replace_them(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    put = client.put("/api/users/u1/instructions", json={"instructions": "  Answer like a pirate.  "})
    assert put.status_code == 200 and put.json()["instructions"] == "Answer like a pirate."
    _send(client, "hello")
    run_jobs()
    # The operator's SYSTEM_PROMPT ("Be brief.") stays first; the person's instructions follow it.
    assert fake_model.prompts[-1][0] == {"role": "system", "content": "Be brief.\n\nAnswer like a pirate."}

    too_long = client.put("/api/users/u1/instructions", json={"instructions": "x" * 1001})
    assert too_long.status_code == 422
    assert (
        client.put("/api/users/u1/instructions", json={"instructions": None}).json()["instructions"] is None
    )
    _send(client, "hello again")
    run_jobs()
    assert fake_model.prompts[-1][0] == {"role": "system", "content": "Be brief."}


def test_a_person_over_quota_is_told_when_it_resets_while_another_is_answered(
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
    run_jobs: Callable[[], None],
) -> None:
    limited = gateway_settings.model_copy(update={"quota_tokens_per_day": 50})
    with make_client(limited, db_url, queue_settings) as client:
        _send(client, "a first question that costs more than fifty tokens")
        run_jobs()
        quota = client.get("/api/users/u1/quota").json()
        assert quota["day"]["used"] > 50 and quota["day"]["limit"] == 50

        refused = client.post("/api/chat", json={"user_id": "u1", "text": "one more"})
        assert refused.status_code == 429
        body = refused.json()
        assert body["code"] == "quota_exceeded" and body["period"] == "day" and body["limit"] == 50
        resets_at = datetime.fromisoformat(body["resets_at"])
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
        assert (resets_at.date(), resets_at.hour, resets_at.minute) == (tomorrow, 0, 0)
        assert 0 < int(refused.headers["Retry-After"]) <= 86_400

        # Another person is answered meanwhile.
        other = _send(client, "hi", user="u2")
        run_jobs()
        assert client.get(f"/api/status/{other}").json()["status"] == "finished"

        # An admin raises this person's quota: their messages are taken again.
        raised = client.put("/api/users/u1/quota", json={"per_day": 100_000, "per_month": None})
        assert raised.status_code == 200 and raised.json()["day"]["limit"] == 100_000
        assert client.post("/api/chat", json={"user_id": "u1", "text": "one more"}).status_code == 202


def test_who_may_touch_a_conversation(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    with make_client(gateway_settings, db_url, queue_settings) as client:
        del client.headers["X-API-Key"]
        alice, bob = _bearer(db, "web:alice"), _bearer(db, "web:bob")
        assert client.post("/api/chat", json={"text": "alice's secret"}, headers=alice).status_code == 202
        (mine,) = client.get("/api/users/web:alice/conversations", headers=alice).json()
        path = f"/api/conversations/{mine['conversation_id']}"

        # Bob can neither see Alice's list nor touch her conversation (404: no hint it exists).
        assert client.get("/api/users/web:alice/conversations", headers=bob).status_code == 403
        for method, suffix, body in [
            ("POST", "/activate", None),
            ("PATCH", "", {"title": "mine now"}),
            ("DELETE", "", None),
            ("GET", "/export", None),
        ]:
            response = client.request(method, path + suffix, json=body, headers=bob)
            assert response.status_code == 404, (method, suffix, response.text)
        assert client.get("/api/users/web:alice/export", headers=bob).status_code == 403
        # The bot acts only for Telegram users, and only for the presser it names.
        bot = {"X-API-Key": BOT_API_KEY, "X-Acting-For": "tg:1"}
        assert client.post(path + "/activate", headers=bot).status_code == 404
        # Quotas are set by the operator (or the bot, for its admins), never by the person.
        quota = client.put("/api/users/web:alice/quota", json={"per_day": 10**9}, headers=alice)
        assert quota.status_code == 403
        operator = {"X-API-Key": API_KEY}
        assert (
            client.put("/api/users/web:alice/quota", json={"per_day": 5}, headers=operator).status_code == 200
        )
        # A huge or negative id is refused at the edge, not by the database.
        assert client.get("/api/conversations/99999999999999999999/export", headers=alice).status_code == 422
        assert client.post(f"/api/conversations/{2**31}/activate", headers=alice).status_code == 422
        too_big = client.put("/api/users/web:alice/quota", json={"per_day": 2**31}, headers=operator)
        assert too_big.status_code == 422
        assert (
            json.loads(client.get(path + "/export?format=json", headers=alice).text)["title"]
            == "alice's secret"
        )


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=st.text(min_size=1, max_size=300).filter(lambda s: s.strip()))
def test_a_title_is_one_short_line(text: str) -> None:
    title = title_from(text)
    assert "\n" not in title and len(title) <= TITLE_FROM_MESSAGE_CHARS + 1
    assert title.strip() == title and title


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("  Hello\n\nthere  ", "Hello there"),
        ("word " * 30, "word word word word word word word word word word word word…"),
        ("x" * 100, "x" * TITLE_FROM_MESSAGE_CHARS + "…"),
    ],
)
def test_titles_from_first_messages(text: str, title: str) -> None:
    assert title_from(text) == title
