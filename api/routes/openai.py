"""OpenAI-compatible endpoints: /v1/chat/completions (streaming or not) and /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ChangesDep, DbDep, GatewaySettingsDep, QueueDep, QueueSettingsDep
from api.openai_schemas import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from api.services import completions
from shared.config import ModelSettings

router = APIRouter(prefix="/v1", tags=["openai"])


def served_model() -> str:
    """The name under which the worker's model is listed."""
    return ModelSettings().display_name()


@router.get("/models", response_model=ModelList)
def models() -> ModelList:
    return ModelList(data=[ModelCard(id=served_model(), created=0)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    db: DbDep,
    queue: QueueDep,
    changes: ChangesDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
) -> ChatCompletion | StreamingResponse:
    """Answer a conversation; with `stream: true`, as OpenAI's server-sent chunks."""
    task_id = await run_in_threadpool(
        completions.submit,
        db,
        queue,
        body,
        queue_settings.max_queue_length,
        gateway.max_text_chars,
        gateway.rate_limit_per_minute,
    )
    model = body.model or served_model()
    if body.stream:
        return StreamingResponse(
            completions.stream(db, queue, changes, task_id, model, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await completions.complete(db, queue, changes, task_id, model, request.is_disconnected)
