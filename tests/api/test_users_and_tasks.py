"""Regenerate, personas, delivery notes, latest task, statistics and the system view."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.config import ModelSettings
from shared.db import Database
from shared.models import Task
from shared.personas import PERSONAS
from shared.presets import LARGE_DEFAULT, SMALL_DEFAULT
from tests.fakes import FakeChatModel
from tests.helpers import send as _send
from tests.helpers import status as _status


def test_regenerate_answers_again_without_the_old_answer(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    first = _send(client, "first")
    second = _send(client, "second")
    run_jobs()

    response = client.post(f"/api/tasks/{second}/regenerate")
    assert response.status_code == 202
    again = response.json()["task_id"]
    run_jobs()

    assert again != second
    assert _status(client, again)["answer"] == "Answer 2 to 'second' (saw 1 answers)"
    # The replaced exchange is gone from what the model sees; the first one stays.
    contents = [m["content"] for m in fake_model.prompts[-1]]
    assert contents.count("second") == 1
    assert "first" in contents
    follow_up = _send(client, "third")
    run_jobs()
    assert _status(client, follow_up)["answer"] == "Answer 3 to 'third' (saw 2 answers)"
    assert _status(client, first)["status"] == "finished"


def test_a_regenerate_flood_queues_one_task(
    client: TestClient, run_jobs: Callable[[], None], db: Database
) -> None:
    """Pressing regenerate under the same answer ten times: one new task, nine refusals (409)."""
    task_id = _send(client, "once")
    run_jobs()
    codes = [client.post(f"/api/tasks/{task_id}/regenerate").status_code for _ in range(10)]
    assert sorted(codes) == [202] + [409] * 9
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 2


def test_regenerate_refuses_a_task_in_progress(client: TestClient) -> None:
    task_id = _send(client, "pending")
    response = client.post(f"/api/tasks/{task_id}/regenerate")
    assert response.status_code == 409
    assert "still being answered" in response.json()["detail"]
    assert client.post("/api/tasks/nope/regenerate").status_code == 404


def test_persona_changes_the_system_prompt(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    assert client.get("/api/users/u1/settings").json() == {
        "persona": "default",
        "instructions": None,
        "speech_language": None,
    }
    assert client.put("/api/users/u1/persona", json={"persona": "teacher"}).status_code == 200
    _send(client, "explain gravity")
    run_jobs()

    # The persona adds to the operator's SYSTEM_PROMPT ("Be brief."), never replaces it.
    teacher = PERSONAS["teacher"].prompt
    assert fake_model.prompts[-1][0] == {"role": "system", "content": f"Be brief.\n\n{teacher}"}
    assert client.get("/api/users/u1/settings").json() == {
        "persona": "teacher",
        "instructions": None,
        "speech_language": None,
    }
    bad = client.put("/api/users/u1/persona", json={"persona": "pirate"})
    assert bad.status_code == 404 and "concise" in bad.json()["detail"]
    names = {p["key"]: p["names"] for p in client.get("/api/personas").json()}
    assert names["teacher"] == {"en": "Teacher", "ru": "Учитель"}


def test_client_notes_and_delivery(client: TestClient, run_jobs: Callable[[], None]) -> None:
    meta = {"chat": 42, "message": 7, "lang": "ru"}
    first = _send(client, "hi", user="tg:42", client_meta=meta)
    _send(client, "no notes", user="tg:43")
    _send(client, "elsewhere", user="web:1", client_meta={"x": 1})
    run_jobs()

    owed = client.get("/api/tasks/undelivered", params={"user_prefix": "tg:"}).json()
    assert [t["task_id"] for t in owed] == [first]
    assert owed[0]["client_meta"] == meta and owed[0]["status"] == "finished"

    updated = client.patch(f"/api/tasks/{first}", json={"client_meta": {"placeholder": 99}}).json()
    assert updated["client_meta"] == {**meta, "placeholder": 99}
    assert client.patch(f"/api/tasks/{first}", json={"delivered": True}).json()["delivered"] is True
    assert client.get("/api/tasks/undelivered", params={"user_prefix": "tg:"}).json() == []
    too_big = client.post("/api/chat", json={"user_id": "u", "text": "x", "client_meta": {"a": "b" * 300}})
    assert too_big.status_code == 422
    # Each change may bring up to 20 notes; what they add up to is bounded too, and nothing is kept.
    many = {f"k{n}": n for n in range(17)}
    refused = client.patch(f"/api/tasks/{first}", json={"client_meta": many})
    assert refused.status_code == 409 and "at most 20" in refused.json()["detail"]
    assert client.get(f"/api/status/{first}").json()["client_meta"] == {**meta, "placeholder": 99}


def test_latest_task_and_stats(client: TestClient, run_jobs: Callable[[], None]) -> None:
    assert client.get("/api/users/u1/latest-task").status_code == 404
    _send(client, "one")
    last = _send(client, "two")
    in_group = _send(client, "hey", chat_id="group")
    run_jobs()

    assert client.get("/api/users/u1/latest-task").json()["task_id"] == last
    assert client.get("/api/users/u1/latest-task", params={"chat_id": "group"}).json()["task_id"] == in_group
    stats = client.get("/api/users/u1/stats").json()
    assert stats["messages"] == 3 and stats["answers"] == 3 and stats["conversations"] == 2
    assert stats["completion_tokens"] > 0 and stats["tokens_per_second"] > 0
    assert client.get("/api/users/nobody/stats").json()["messages"] == 0


def test_system_view_and_wait_estimate(client: TestClient, run_jobs: Callable[[], None]) -> None:
    before = client.get("/api/system").json()
    # Before any answer, the model configured (the workers read the same settings): with none
    # named, the default this machine's memory picks.
    preset, _ = ModelSettings(_env_file=None).choice()
    assert preset is not None and preset.name in (LARGE_DEFAULT, SMALL_DEFAULT)
    assert before == {
        "queued": 0,
        "generating": 0,
        "workers": 0,
        "model": preset.file.removesuffix(".gguf"),
        "preset": preset.name,
        "recent_tokens_per_second": None,
    }
    first = _send(client, "warm up")
    assert _status(client, first)["estimated_wait_seconds"] is None  # no speed known yet
    run_jobs()
    waiting = [_send(client, f"q{n}", user=f"w{n}") for n in range(3)]

    system = client.get("/api/system").json()
    assert system["queued"] == 3 and system["model"] == "fake-model"
    assert system["recent_tokens_per_second"] > 0
    estimates = [_status(client, t)["estimated_wait_seconds"] for t in waiting]
    assert estimates[0] is not None and estimates[0] <= estimates[1] <= estimates[2]
    assert _status(client, first)["model"] == "fake-model"
