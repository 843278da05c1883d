"""/api/documents: a document sent is queued, read by a worker (its progress and result shown),
listed and deleted, by its owner only; what cannot be read says why."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openai import BadRequestError, OpenAI
from openai.types.chat import ChatCompletionMessageParam
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select, update

from fakes import documents as files
from shared.config import DocumentSettings, GatewaySettings, QueueSettings
from shared.db import Database
from shared.models import Document, DocumentPassage, TaskStatus, utcnow
from shared.recovery import recover
from tests.conftest import API_KEY, ServedGateway, make_client, wait_for
from tests.fakes import FakeChatModel

ALICE, BOB = "tg:1001", "tg:1002"


def _send(client: TestClient, user: str, name: str, data: bytes) -> dict[str, object]:
    response = client.post("/api/documents", data={"user_id": user}, files={"file": (name, data)})
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_document_is_read_listed_and_deleted_by_its_owner_only(
    client: TestClient, run_jobs: Callable[[], None], db: Database
) -> None:
    sent = _send(client, ALICE, "договор.pdf", files.pdf(["Срок договора — один год.", "Оплата картой."]))
    assert sent["status"] == "queued" and sent["name"] == "договор.pdf"
    run_jobs()
    document = f"/api/documents/{sent['document_id']}"
    read = client.get(document, params={"user_id": ALICE}).json()
    assert read["status"] == "finished" and read["kind"] == "pdf"
    assert (read["pages"], read["pages_read"], read["passages"]) == (2, 2, 2)
    assert read["conversation_id"] == sent["conversation_id"]
    listed = client.get(f"/api/users/{ALICE}/documents").json()
    assert [d["document_id"] for d in listed] == [sent["document_id"]]
    mine = client.get(f"/api/users/{ALICE}/documents", params={"conversation_id": read["conversation_id"]})
    assert len(mine.json()) == 1
    # Another person: not shown, not listed, not deleted.
    assert client.get(document, params={"user_id": BOB}).status_code == 404
    assert client.get(f"/api/users/{BOB}/documents").json() == []
    assert client.delete(document, params={"user_id": BOB}).status_code == 404
    assert client.get(document, params={"user_id": ALICE}).status_code == 200
    # The owner deletes it, and its passages go with it.
    assert client.delete(document, params={"user_id": ALICE}).status_code == 204
    assert client.get(document, params={"user_id": ALICE}).status_code == 404
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(DocumentPassage)) == 0


def test_what_cannot_be_read_says_why_and_keeps_no_file(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    locked = _send(client, ALICE, "secret.pdf", files.pdf(["тайна"], password="1"))
    animation = _send(client, ALICE, "cat.gif", b"GIF89a" + bytes(64))
    broken = _send(client, ALICE, "photo.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    run_jobs()
    cases = (
        (locked, "document_encrypted"),
        (animation, "document_unsupported"),
        (broken, "document_unreadable"),
    )
    for sent, code in cases:
        shown = client.get(f"/api/documents/{sent['document_id']}", params={"user_id": ALICE}).json()
        assert (shown["status"], shown["error_code"]) == ("failed", code)
        assert shown["error"]


@pytest.fixture
def small_client(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings
) -> Iterator[TestClient]:
    settings = DocumentSettings(_env_file=None, document_max_bytes=4096, document_max_per_user=2)
    with make_client(gateway_settings, db_url, queue_settings, document_settings=settings) as test_client:
        yield test_client


def test_too_large_empty_or_one_too_many_is_refused_before_it_is_kept(small_client: TestClient) -> None:
    too_large = small_client.post(
        "/api/documents", data={"user_id": ALICE}, files={"file": ("big.txt", b"x" * 5000)}
    )
    assert too_large.status_code == 413
    empty = small_client.post("/api/documents", data={"user_id": ALICE}, files={"file": ("e.txt", b"")})
    assert empty.status_code == 422
    for n in range(2):
        _send(small_client, ALICE, f"{n}.txt", b"some text")
    third = small_client.post("/api/documents", data={"user_id": ALICE}, files={"file": ("3.txt", b"more")})
    assert third.status_code == 429
    assert len(small_client.get(f"/api/users/{ALICE}/documents").json()) == 2


def test_a_nul_in_the_form_is_refused_and_in_a_file_name_dropped(client: TestClient) -> None:
    # PostgreSQL cannot store a NUL character: found by the API fuzzer as a 500 there.
    for field in ("user_id", "chat_id"):
        fields = {"user_id": ALICE, field: "a\x00b"}
        refused = client.post("/api/documents", data=fields, files={"file": ("a.txt", b"text")})
        assert refused.status_code == 422, (field, refused.text)
    # Written by hand: an HTTP library would percent-encode these characters in the name.
    for raw, shown in (("от\x00чёт\u202e\x1f.txt", "отчёт.txt"), ("\x00\x07", "document")):
        body = (
            f'--b\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n{ALICE}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="file"; filename="{raw}"\r\n\r\n'
            "some text\r\n--b--\r\n"
        ).encode()
        sent = client.post(
            "/api/documents", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert (sent.status_code, sent.json()["name"]) == (202, shown), sent.text


def test_a_reading_whose_worker_stopped_fails_and_a_lost_job_is_queued_again(
    client: TestClient, db: Database, queue: Queue
) -> None:
    stuck = _send(client, ALICE, "a.txt", b"first")["document_id"]
    lost = _send(client, ALICE, "b.txt", b"second")["document_id"]
    now = utcnow()
    with db.writing() as session:
        # One was taken by a worker that died long ago; the other's job vanished from Redis.
        session.execute(
            update(Document)
            .where(Document.id == stuck)
            .values(status=TaskStatus.STARTED, started_at=now - timedelta(seconds=300))
        )
        session.execute(update(Document).values(created_at=now - timedelta(seconds=120)))
    Job.fetch(str(lost), connection=queue.connection, serializer=queue.serializer).delete()
    recover(db, queue, stale_after=60, longest_read=245)
    shown = client.get(f"/api/documents/{stuck}", params={"user_id": ALICE}).json()
    assert (shown["status"], shown["error_code"]) == ("failed", "document_interrupted")
    assert str(lost) in queue.get_job_ids()


def test_a_question_in_the_conversation_is_answered_from_its_documents_with_sources(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    rules = files.pdf(
        ["Доставка занимает два рабочих дня.", "Вернуть товар можно в течение четырнадцати дней."]
    )
    document = _send(client, ALICE, "правила.pdf", rules)
    run_jobs()
    asked = client.post("/api/chat", json={"user_id": ALICE, "text": "За сколько дней можно вернуть товар?"})
    assert asked.json()["conversation_id"] == document["conversation_id"]
    run_jobs()
    status = client.get(f"/api/status/{asked.json()['task_id']}").json()
    assert status["status"] == "finished"
    assert status["sources"] == [
        {"document_id": document["document_id"], "name": "правила.pdf", "page": 2, "section": None}
    ]
    prompt = fake_model.prompts[-1][-1]["content"]
    assert "«правила.pdf», стр. 2: Вернуть товар можно в течение четырнадцати дней." in prompt
    assert prompt.endswith("Вопрос: За сколько дней можно вернуть товар?")
    # A follow-up with few words of its own is looked up with the question before it.
    again = client.post("/api/chat", json={"user_id": ALICE, "text": "А точно?"}).json()
    run_jobs()
    assert client.get(f"/api/status/{again['task_id']}").json()["sources"]
    # Another person asking the same in their own conversation gets nothing of Alice's.
    other = client.post("/api/chat", json={"user_id": BOB, "text": "За сколько дней можно вернуть товар?"})
    run_jobs()
    assert client.get(f"/api/status/{other.json()['task_id']}").json()["sources"] is None
    assert "четырнадцати" not in fake_model.prompts[-1][-1]["content"]


@pytest.mark.slow
def test_a_v1_request_naming_documents_is_answered_from_them_with_sources(
    served_gateway: ServedGateway, fake_workers: Callable[..., Any]
) -> None:
    fake_workers()
    owner = "openai:default"  # whom the operator's key asks for on /v1 when `user` is not given
    with httpx.Client(base_url=served_gateway.url, headers={"X-API-Key": API_KEY}, timeout=30) as http:

        def upload(user: str, name: str, data: bytes) -> str:
            sent = http.post("/api/documents", data={"user_id": user}, files={"file": (name, data)})
            document_id: str = sent.json()["document_id"]
            wait_for(
                lambda: (
                    http.get(f"/api/documents/{document_id}", params={"user_id": user}).json()["status"]
                    == "finished"
                ),
                timeout=60,
            )
            return document_id

        manual = upload(
            owner, "router.pdf", files.pdf(["Hold the reset button for ten seconds.", "Blue light."])
        )
        theirs = upload(ALICE, "theirs.pdf", files.pdf(["Hold the reset button for ten seconds."]))
    client = OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)
    asked: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "How long do I hold the reset button?"}
    ]
    response = client.chat.completions.create(model="any", messages=asked, extra_body={"documents": [manual]})
    assert (response.choices[0].message.content or "").startswith("Answer 1 to 'Passages from the person")
    assert (response.model_extra or {})["sources"] == [
        {"document_id": manual, "name": "router.pdf", "page": 1, "section": None}
    ]
    # Someone else's document is refused, in OpenAI's shape, as if it did not exist.
    with pytest.raises(BadRequestError) as refused:
        client.chat.completions.create(model="any", messages=asked, extra_body={"documents": [theirs]})
    assert refused.value.code == "document_not_found"
