"""/v1/embeddings with the official openai client: the document embedder (the real one) answers
through the queue and a worker process, with the admission, quotas and bounds of any other work."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from sqlalchemy import func, select

from api.services import credentials
from api.services import embeddings as served
from api.services.quotas import Defaults, standing
from api.services.users import get_or_create_user
from shared.config import DatabaseSettings, DocumentSettings, GatewaySettings, QueueSettings
from shared.db import Database
from shared.identity import openai_user
from shared.models import CredentialKind, EmbeddingRequest, utcnow
from shared.retention import forget_user, purge_embeddings
from tests.conftest import API_KEY, BOT_API_KEY, MODELS, ServedGateway
from worker.embedder import DIMENSIONS, Embedder

pytestmark = pytest.mark.slow

CAT = "Можно ли жить с кошкой?"
PETS = "Домашних животных держать в квартире можно только с согласия собственника."
SMOKING = "Курение в квартире и на балконе запрещено."


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(MODELS / "embedder" / "e5-small")


@pytest.fixture
def client(served_gateway: ServedGateway, fake_workers: Callable[..., Any]) -> OpenAI:
    # A real worker process (the scripted chat model; the document embedder is on at this size).
    fake_workers(DOCUMENT_EMBEDDER="true")
    return OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def _rows(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(EmbeddingRequest)) or 0


def test_texts_get_the_document_embedders_vectors_and_count_towards_the_quota(
    client: OpenAI, served_gateway: ServedGateway, db: Database, embedder: Embedder
) -> None:
    # The client asks for base64 by default and decodes it: the bytes are float32, as OpenAI's are.
    answer = client.embeddings.create(
        model="text-embedding-3-small", input=[CAT, PETS, SMOKING], user="alice"
    )
    assert answer.model == "multilingual-e5-small"
    got = np.array([item.embedding for item in answer.data], dtype=np.float32)
    assert got.shape == (3, DIMENSIONS) and [item.index for item in answer.data] == [0, 1, 2]
    # What the worker computed is what the embedder gives in this process, as questions ("query: ").
    counted = embedder.embed_counted([CAT, PETS, SMOKING], query=True)
    assert counted is not None
    assert np.allclose(got, counted[0], atol=1e-6)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == counted[1] > 0
    # By meaning: the cat is nearer the pets' rule than the smoking one.
    assert got[0] @ got[1] > got[0] @ got[2]
    # Passages are read with e5's other prefix, so they differ; floats come as floats.
    raw = httpx.post(
        f"{served_gateway.url}/v1/embeddings",
        json={
            "model": "m",
            "input": PETS,
            "input_type": "passage",
            "encoding_format": "float",
            "user": "alice",
        },
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=120,
    )
    assert raw.status_code == 200, raw.text
    passage = np.array(raw.json()["data"][0]["embedding"], dtype=np.float32)
    as_passage = embedder.embed([PETS], query=False)
    assert as_passage is not None and np.allclose(passage, as_passage[0], atol=1e-6)
    assert not np.allclose(passage, got[1], atol=1e-3)
    # Only the tokens stay in the database: the texts and vectors are gone once handed over.
    with db.reading() as session:
        kept = session.execute(select(EmbeddingRequest.texts, EmbeddingRequest.vectors)).all()
    assert kept and all(texts is None and vectors is None for texts, vectors in kept)
    used = counted[1] + raw.json()["usage"]["prompt_tokens"]
    assert standing(db, openai_user("alice"), Defaults()).day.used == used


def test_a_used_up_quota_refuses_embeddings_too(
    gateway_settings: GatewaySettings,
    db_url: str,
    db: Database,
    queue_settings: QueueSettings,
    fake_workers: Callable[..., Any],
) -> None:
    fake_workers(DOCUMENT_EMBEDDER="true")
    with _gateway(
        gateway_settings.model_copy(update={"quota_tokens_per_day": 5}), db_url, queue_settings
    ) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
        first = client.embeddings.create(model="m", input="Сколько стоит доставка?", user="carol")
        assert first.usage.prompt_tokens >= 5
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="m", input="А возврат?", user="carol")
    assert _rows(db) == 1
    # A personal token's requests are its holder's, whatever `user` says: their quota is their own.
    token, _ = credentials.issue(db, "web:erin", CredentialKind.API, None)
    with _gateway(gateway_settings, db_url, queue_settings) as url:
        erin = OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=120)
        theirs = erin.embeddings.create(model="m", input="Сколько стоит доставка?", user="carol")
    assert standing(db, "web:erin", Defaults()).day.used == theirs.usage.prompt_tokens
    assert standing(db, openai_user("carol"), Defaults()).day.used == first.usage.prompt_tokens
    # Deleting the person deletes their requests, and only theirs.
    assert forget_user(db, openai_user("carol"))
    assert _rows(db) == 1


def test_requests_beyond_the_bounds_are_refused_before_anything_is_recorded(
    client: OpenAI, served_gateway: ServedGateway, db: Database
) -> None:
    too_many = ["слово"] * 65
    refusals: list[dict[str, Any]] = [
        {"input": too_many},
        {"input": "а" * 32_001},
        {"input": ["текст", "  "]},
        {"input": [101, 2023, 102]},
        {"input": [[101, 2023], [102]]},
    ]
    for body in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model="m", **body)
        assert refused.value.code == "invalid_input"
        assert "- input: " in refused.value.message
    assert _rows(db) == 0
    # A bot's key is not a client's.
    bot = httpx.post(
        f"{served_gateway.url}/v1/embeddings",
        json={"model": "m", "input": "hi"},
        headers={"Authorization": f"Bearer {BOT_API_KEY}"},
    )
    assert bot.status_code == 403


def test_a_worker_without_the_embedder_is_a_clear_503(
    served_gateway: ServedGateway, fake_workers: Callable[..., Any]
) -> None:
    # The gateway offers it, the worker was started with it off: the client is told, not left waiting.
    fake_workers(DOCUMENT_EMBEDDER="false")
    client = OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    with pytest.raises(openai.InternalServerError) as missing:
        client.embeddings.create(model="m", input="hi")
    assert missing.value.status_code == 503
    assert missing.value.code == "embedder_unavailable"


def test_without_a_worker_the_request_ends_in_a_timeout_not_forever(
    gateway_settings: GatewaySettings, db_url: str, db: Database, queue_settings: QueueSettings
) -> None:
    with _gateway(
        gateway_settings, db_url, queue_settings.model_copy(update={"job_timeout_seconds": 1})
    ) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=60)
        with pytest.raises(openai.APIStatusError) as late:
            client.embeddings.create(model="m", input="hi")
    assert late.value.status_code == 504 and late.value.code == "timeout"
    with db.reading() as session:
        status, texts = session.execute(select(EmbeddingRequest.status, EmbeddingRequest.texts)).one()
    assert status == "failed" and texts is None


def test_without_an_embedding_model_it_is_a_clear_404_after_the_key_and_the_request(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings
) -> None:
    off = DocumentSettings(_env_file=None, document_embedder=False)
    with _gateway(gateway_settings, db_url, queue_settings, off) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError) as missing:
            client.embeddings.create(model="text-embedding-3-small", input=["Привет", "hello"])
        assert missing.value.code == "model_not_found"
        assert "no embedding model" in missing.value.message
        assert [m.id for m in client.models.list().data if m.id == "multilingual-e5-small"] == []
        stranger = OpenAI(base_url=f"{url}/v1", api_key="wrong-key-wrong-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            stranger.embeddings.create(model="m", input="hi")
        bad = httpx.post(
            f"{url}/v1/embeddings",
            json={"model": "m", "input": []},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["message"].startswith("input")


def test_vectors_are_handed_over_as_floats_or_their_float32_bytes() -> None:
    rows = np.array([[0.25, -1.5, 3.0], [1e-3, 0.0, -2.0]], dtype="<f4")
    as_floats = served.rows(rows.tobytes(), 3, as_base64=False)
    assert np.array_equal(np.array(as_floats, dtype=np.float32), rows)
    as_text = served.rows(rows.tobytes(), 3, as_base64=True)
    decoded = [np.frombuffer(base64.b64decode(str(row)), dtype="<f4") for row in as_text]
    assert np.array_equal(np.stack(decoded), rows)


class _gateway:
    """A gateway of this test's own settings, served on loopback for the block."""

    def __init__(
        self,
        gateway: GatewaySettings,
        db_url: str,
        queue: QueueSettings,
        documents: DocumentSettings | None = None,
    ) -> None:
        self.served = ServedGateway(
            gateway, DatabaseSettings(_env_file=None, database_url=db_url), queue, documents=documents
        )

    def __enter__(self) -> str:
        self.served.start()
        return self.served.url

    def __exit__(self, *_exc: object) -> None:
        self.served.stop()


def test_retention_drops_forgotten_texts_and_then_the_rows(db: Database) -> None:
    """Texts whose gateway stopped waiting go after an hour; the tokens stay for the month's quota."""
    with db.writing() as session:
        user = get_or_create_user(session, openai_user("dora"))
        for name, age in (
            ("new", timedelta(minutes=5)),
            ("hour", timedelta(hours=2)),
            ("old", timedelta(days=40)),
        ):
            session.add(
                EmbeddingRequest(
                    id=name,
                    user_id=user.id,
                    texts='["x"]',
                    vectors=b"\0" * 4,
                    prompt_tokens=3,
                    created_at=utcnow() - age,
                )
            )
    assert purge_embeddings(db) == 3  # two rows cleared, one of them deleted too
    with db.reading() as session:
        left = {row.id: (row.texts, row.vectors) for row in session.scalars(select(EmbeddingRequest))}
    assert left == {"new": ('["x"]', b"\0" * 4), "hour": (None, None)}
