"""OpenAI-compatible endpoints: /v1/chat/completions (streaming or not), /v1/models, /v1/embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, CallerRole, OpenAIClientDep
from api.deps import (
    ChangesDep,
    DbDep,
    DocumentSettingsDep,
    GatewaySettingsDep,
    ModelSettingsDep,
    QueueDep,
    QueueSettingsDep,
    StreamsDep,
)
from api.errors import OpenAIError
from api.openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
)
from api.services import completions
from api.services import embeddings as embedding_work
from api.services.tasks import Limits
from shared.config import embedding_model
from shared.enums import EmbeddingFailure
from shared.identity import openai_user

router = APIRouter(prefix="/v1", tags=["openai"])

NO_EMBEDDINGS = (
    "This server has no embedding model: its document embedder is off (DOCUMENT_EMBEDDER, or a box "
    "under 1.7 GB), and no remote one is set (OPENAI_EMBEDDING_MODEL)."
)


@router.get("/models", response_model=ModelList)
def models(
    _caller: CallerDep, model_settings: ModelSettingsDep, document_settings: DocumentSettingsDep
) -> ModelList:
    """The worker's model, under its display name, and the embedding model where there is one."""
    cards = [ModelCard(id=model_settings.display_name(), created=0)]
    if (embedder := embedding_model(model_settings, document_settings)) is not None:
        cards.append(ModelCard(id=embedder, created=0))
    return ModelList(data=cards)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    caller: OpenAIClientDep,
    db: DbDep,
    streams: StreamsDep,
    queue: QueueDep,
    changes: ChangesDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
    model_settings: ModelSettingsDep,
) -> ChatCompletion | StreamingResponse:
    """Answer a conversation; with `stream: true`, as OpenAI's server-sent chunks.

    With a personal token the conversation is the token holder's (`user` is ignored); with the
    operator's key it is `openai:<user>`. `max_tokens` is capped at the operator's MAX_TOKENS, and
    system messages add to the operator's SYSTEM_PROMPT rather than replace it.
    """
    user_id = caller.user_id if caller.role == CallerRole.PERSON else completions.operator_user(body)
    assert user_id is not None
    streams.check(user_id)  # a /v1 request waits for its answer: it holds a stream either way
    task_id = await run_in_threadpool(
        completions.submit,
        db,
        queue,
        body,
        user_id,
        completions.Bounds(
            max_queue=queue_settings.max_queue_length,
            max_chars=gateway.max_text_chars,
            max_tokens=model_settings.max_tokens,
            max_prompt_chars=model_settings.n_ctx * completions.CHARS_PER_TOKEN_AT_MOST,
        ),
        Limits.of(gateway),
    )
    model = body.model or model_settings.display_name()
    ending = streams.ending(request.is_disconnected)
    if body.stream:

        async def chunks() -> AsyncIterator[str]:
            # Counted while the body is sent: a response never started holds nothing.
            with streams.hold(user_id):
                async for chunk in completions.stream(
                    db, queue, changes, task_id, model, ending, body.usage_streamed
                ):
                    yield chunk

        return StreamingResponse(
            chunks(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    with streams.hold(user_id):
        return await completions.complete(db, queue, changes, task_id, model, ending)


_EMBEDDING_REFUSALS: dict[str, tuple[int, str]] = {
    EmbeddingFailure.UNAVAILABLE: (503, "The embedding model of this server is not available right now."),
    EmbeddingFailure.FAILED: (500, "The embedding model failed on these texts."),
}


@router.post(
    "/embeddings", response_model=EmbeddingList, responses={404: {"description": "No embedding model."}}
)
async def embeddings(
    body: EmbeddingRequest,
    caller: OpenAIClientDep,
    db: DbDep,
    queue: QueueDep,
    changes: ChangesDep,
    streams: StreamsDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
    model_settings: ModelSettingsDep,
    document_settings: DocumentSettingsDep,
) -> EmbeddingList:
    """Vectors for texts, in OpenAI's shape, from the document embedder (multilingual-e5-small, 384
    floats) or, with LLM_BACKEND=openai and OPENAI_EMBEDDING_MODEL, the remote server's model. The
    `model` asked for is not looked at: there is one. Queued for the workers like chat messages, with
    the same admission and quotas (the tokens read count); without an embedding model, a 404
    (`model_not_found`) once the key and the request are checked."""
    if embedding_model(model_settings, document_settings) is None:
        raise OpenAIError(404, NO_EMBEDDINGS, "invalid_request_error", "model_not_found")
    try:
        texts = body.texts(gateway.embedding_max_inputs, gateway.embedding_max_chars)
    except ValueError as exc:
        raise OpenAIError(400, str(exc), "invalid_request_error", "invalid_input") from None
    user_id = caller.user_id if caller.role == CallerRole.PERSON else openai_user(body.user)
    assert user_id is not None
    streams.check(user_id)  # it waits for its vectors on an open connection, as a long poll does
    request_id = await run_in_threadpool(
        embedding_work.submit,
        db,
        queue,
        user_id,
        texts,
        body.input_type == "query",
        Limits.of(gateway),
        queue_settings.max_queue_length,
    )
    with streams.hold(user_id):
        result = await embedding_work.wait_for(db, changes, request_id, queue_settings.job_timeout_seconds)
    if result.vectors is None or result.dimensions is None or result.model_name is None:
        status, message = _EMBEDDING_REFUSALS.get(
            result.error_code or "", (504, "The embeddings took too long.")
        )
        raise OpenAIError(status, message, "server_error", result.error_code or EmbeddingFailure.TIMEOUT)
    vectors = embedding_work.rows(result.vectors, result.dimensions, body.encoding_format == "base64")
    return EmbeddingList(
        data=[Embedding(index=n, embedding=vector) for n, vector in enumerate(vectors)],
        model=result.model_name,
        usage=EmbeddingUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
    )
