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
    GatewaySettingsDep,
    ModelSettingsDep,
    QueueDep,
    QueueSettingsDep,
    StreamsDep,
)
from api.errors import OpenAIError
from api.openai_schemas import ChatCompletion, ChatCompletionRequest, EmbeddingRequest, ModelCard, ModelList
from api.services import completions
from api.services.tasks import Limits

router = APIRouter(prefix="/v1", tags=["openai"])

NO_EMBEDDINGS = (
    "This server has no embedding model for clients: its document embedder, where it is on, serves "
    "its own document search inside the workers, so /v1/embeddings is not offered."
)


@router.get("/models", response_model=ModelList)
def models(_caller: CallerDep, model_settings: ModelSettingsDep) -> ModelList:
    """The worker's model, under its display name."""
    return ModelList(data=[ModelCard(id=model_settings.display_name(), created=0)])


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


@router.post("/embeddings", response_model=None, responses={404: {"description": "No embedding model."}})
def embeddings(_body: EmbeddingRequest, _caller: OpenAIClientDep) -> None:
    """Vectors for text, in OpenAI's shape: no embedding model serves clients (the document
    embedder is the workers' own), so the answer is a 404 in OpenAI's shape (`model_not_found`). The key
    and the request are checked first, as for a chat completion, so that a client is told the
    server lacks the feature only when it asked properly."""
    raise OpenAIError(404, NO_EMBEDDINGS, "invalid_request_error", "model_not_found")
