"""Vectors for a /v1 client's texts (/v1/embeddings), from the document embedder or a remote server.

The gateway records the texts and queues their request's id; a worker claims the request, writes
the vectors (float32) and the tokens read beside it, and drops the texts. A request claimed by
nobody in time is failed by the gateway; one it gave up on is never claimed afterwards.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

import httpx
import numpy as np
from sqlalchemy import select, update

from shared.config import LOCAL_EMBEDDING_MODEL, DocumentSettings, ModelSettings, embedding_model
from shared.db import Database
from shared.enums import EmbeddingFailure
from shared.jobs import Notice
from shared.models import EmbeddingRequest, TaskStatus, utcnow
from worker.embedder import Embedder, EmbedderUnavailable, Vectors
from worker.remote_llm import remote_client

log = logging.getLogger(__name__)


class EmbeddingFailed(Exception):
    def __init__(self, code: EmbeddingFailure, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class EmbeddingSource(Protocol):
    """Where vectors come from: `embed` gives them and the tokens read, or raises EmbeddingFailed."""

    name: str

    def embed(self, texts: list[str], query: bool) -> tuple[Vectors, int]: ...


class LocalEmbeddings:
    """The document embedder (multilingual-e5-small), shared with document search."""

    name = LOCAL_EMBEDDING_MODEL

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed(self, texts: list[str], query: bool) -> tuple[Vectors, int]:
        try:
            counted = self.embedder.embed_counted(texts, query)
        except EmbedderUnavailable as exc:
            raise EmbeddingFailed(EmbeddingFailure.FAILED, str(exc)) from None
        if counted is None:
            raise EmbeddingFailed(EmbeddingFailure.UNAVAILABLE, "the document embedder could not be loaded")
        return counted


class RemoteEmbeddings:
    """OPENAI_EMBEDDING_MODEL of the OpenAI-compatible server (LLM_BACKEND=openai): the texts are
    passed on as they are (the server has no "query: "/"passage: " convention of ours)."""

    def __init__(self, settings: ModelSettings, transport: httpx.BaseTransport | None = None) -> None:
        name = settings.remote_embedding_model()
        assert name is not None
        self.name = name
        self._base_url = settings.openai_base_url
        self._http = remote_client(settings, transport)

    def embed(self, texts: list[str], query: bool) -> tuple[Vectors, int]:
        try:
            response = self._http.post("/embeddings", json={"model": self.name, "input": texts})
        except httpx.HTTPError as exc:
            raise EmbeddingFailed(EmbeddingFailure.FAILED, f"{self._base_url} failed: {exc!r}") from None
        if response.status_code == 404:
            raise EmbeddingFailed(EmbeddingFailure.UNAVAILABLE, f"{self._base_url} has no {self.name}")
        if response.status_code >= 400:
            raise EmbeddingFailed(
                EmbeddingFailure.FAILED,
                f"{self._base_url} answered {response.status_code}: {response.text[:300]}",
            )
        return _vectors_of(response, len(texts))

    def close(self) -> None:
        self._http.close()


def _vectors_of(response: httpx.Response, count: int) -> tuple[Vectors, int]:
    """The rows of an OpenAI embeddings answer, in input order; anything else is a failure (a server
    that answers per-token vectors, say, is not passed on as if it were right)."""
    try:
        body = response.json()
        rows = sorted(body["data"], key=lambda item: int(item["index"]))
        vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        tokens = int((body.get("usage") or {}).get("prompt_tokens") or 0)
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingFailed(
            EmbeddingFailure.FAILED, f"the server's answer is not embeddings: {exc!r}"
        ) from None
    if vectors.ndim != 2 or vectors.shape[0] != count or vectors.shape[1] == 0:
        raise EmbeddingFailed(
            EmbeddingFailure.FAILED, f"the server answered vectors shaped {vectors.shape} for {count} texts"
        )
    return vectors, tokens


def embedding_source(
    model: ModelSettings, documents: DocumentSettings, embedder: Embedder | None
) -> EmbeddingSource | None:
    """What answers /v1/embeddings in this worker, by the rule the gateway follows too
    (shared.config.embedding_model): the remote server's model, the document embedder, or nothing."""
    if embedding_model(model, documents) is None:
        return None
    if model.remote_embedding_model() is not None:
        return RemoteEmbeddings(model)
    return LocalEmbeddings(embedder) if embedder is not None else None


class EmbeddingWork:
    """Runs the embedding jobs of this worker; without a source, each request fails as unavailable."""

    def __init__(
        self,
        db: Database,
        source: EmbeddingSource | None,
        worker_name: str,
        announce: Callable[[Notice], None],
    ) -> None:
        self.db = db
        self.source = source
        self.worker_name = worker_name
        self._announce = announce

    def run(self, request_id: str) -> None:
        with self.db.writing() as session:
            claimed = session.execute(
                update(EmbeddingRequest)
                .where(EmbeddingRequest.id == request_id, EmbeddingRequest.status == TaskStatus.QUEUED)
                .values(status=TaskStatus.STARTED, worker_name=self.worker_name)
            )
            row = session.execute(
                select(EmbeddingRequest.texts, EmbeddingRequest.as_query).where(
                    EmbeddingRequest.id == request_id
                )
            ).one_or_none()
        if not getattr(claimed, "rowcount", 0) or row is None or row.texts is None:
            log.info("embedding=%s nothing to do", request_id)
            return
        texts: list[str] = json.loads(row.texts)
        began = time.monotonic()
        try:
            if self.source is None:
                raise EmbeddingFailed(EmbeddingFailure.UNAVAILABLE, "this worker has no embedder")
            vectors, tokens = self.source.embed(texts, row.as_query)
        except EmbeddingFailed as exc:
            log.warning("embedding=%s failed (%s): %s", request_id, exc.code, exc)
            self._finish(request_id, status=TaskStatus.FAILED, error_code=exc.code)
            return
        seconds = time.monotonic() - began
        self._finish(
            request_id,
            status=TaskStatus.FINISHED,
            vectors=vectors.astype("<f4").tobytes(),
            dimensions=int(vectors.shape[1]),
            model_name=self.source.name,
            prompt_tokens=tokens,
            compute_seconds=seconds,
        )
        log.info("embedding=%s %d text(s), %d tokens in %.2fs", request_id, len(texts), tokens, seconds)

    def _finish(self, request_id: str, **values: object) -> None:
        with self.db.writing() as session:
            session.execute(
                update(EmbeddingRequest)
                .where(EmbeddingRequest.id == request_id, EmbeddingRequest.status == TaskStatus.STARTED)
                .values(texts=None, finished_at=utcnow(), **values)
            )
        self._announce(request_id)
