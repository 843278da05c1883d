"""LLM_BACKEND=openai with OPENAI_EMBEDDING_MODEL: /v1/embeddings is passed on to the remote server
(a stand-in for it here, as it is not ours), and what it answers is checked before it is passed back."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from shared.config import DocumentSettings, ModelSettings, embedding_model
from shared.enums import EmbeddingFailure
from worker.embeddings import EmbeddingFailed, RemoteEmbeddings, embedding_source

REMOTE = ModelSettings(
    _env_file=None,
    llm_backend="openai",
    openai_base_url="http://remote.test/v1",
    openai_api_key="remote-key",
    openai_embedding_model="nomic-embed-text",
)


def _server(answer: httpx.Response, asked: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return answer

    return httpx.MockTransport(handle)


def test_the_texts_go_to_the_remote_model_and_its_vectors_come_back_in_order() -> None:
    asked: list[httpx.Request] = []
    # Answered out of order, as a server may: each row goes back to its own text.
    body = {
        "data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}],
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    remote = RemoteEmbeddings(REMOTE, _server(httpx.Response(200, json=body), asked))
    vectors, tokens = remote.embed(["один", "two"], query=True)
    assert np.array_equal(vectors, np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)) and tokens == 7
    (request,) = asked
    assert request.url == "http://remote.test/v1/embeddings"
    assert request.headers["Authorization"] == "Bearer remote-key"
    assert json.loads(request.content) == {"model": "nomic-embed-text", "input": ["один", "two"]}


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(404, json={"error": {"message": "no such model"}}), EmbeddingFailure.UNAVAILABLE),
        (httpx.Response(500, text="boom"), EmbeddingFailure.FAILED),
        # Per-token vectors (a server started without pooling) are not one vector per text.
        (
            httpx.Response(200, json={"data": [{"index": 0, "embedding": [[0.1, 0.2], [0.3, 0.4]]}]}),
            EmbeddingFailure.FAILED,
        ),
        (httpx.Response(200, json={"data": []}), EmbeddingFailure.FAILED),
        (httpx.Response(200, text="not json"), EmbeddingFailure.FAILED),
    ],
)
def test_what_the_remote_server_gets_wrong_is_a_failure_not_vectors(
    answer: httpx.Response, code: str
) -> None:
    remote = RemoteEmbeddings(REMOTE, _server(answer, []))
    with pytest.raises(EmbeddingFailed) as failed:
        remote.embed(["один"], query=True)
    assert failed.value.code == code


def test_the_gateway_and_the_worker_agree_on_who_answers() -> None:
    off = DocumentSettings(_env_file=None, document_embedder=False)
    on = DocumentSettings(_env_file=None, document_embedder=True)
    assert embedding_model(REMOTE, off) == "nomic-embed-text"
    assert isinstance(embedding_source(REMOTE, off, None), RemoteEmbeddings)
    local = ModelSettings(_env_file=None)
    assert embedding_model(local, off) is None and embedding_source(local, off, None) is None
    assert embedding_model(local, on) == "multilingual-e5-small"
    # Remote chat without a remote embedding model: the document embedder answers, where it is on.
    remote_chat = REMOTE.model_copy(update={"openai_embedding_model": None})
    assert embedding_model(remote_chat, on) == "multilingual-e5-small"
    assert embedding_model(remote_chat, off) is None
    # On a 1 GB box the embedder is off unless asked for.
    assert (
        embedding_model(ModelSettings(_env_file=None, memory_mb=1024), DocumentSettings(_env_file=None))
        is None
    )
