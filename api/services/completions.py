"""OpenAI-style chat completions on top of the same queue, tasks and history records.

Each request brings its whole conversation. It is recorded as a conversation of its own: earlier
turns as answered exchanges, the last user message as a new task, with the request's system
prompt and sampling settings. The worker then answers it like any other task.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.errors import OpenAIError
from api.openai_schemas import ChatCompletion, ChatCompletionRequest, Choice, Usage
from api.services.changes import TaskChanges
from api.services.stream import TextDiff, follow
from api.services.tasks import (
    Limits,
    add_exchange,
    admit,
    admit_within,
    cancel,
    enqueue_or_undo,
    new_task,
)
from api.services.users import OPENAI_CHAT, get_or_create_user
from shared.db import Database
from shared.identity import openai_user
from shared.models import Conversation, Document, FinishReason, TaskStatus, User, utcnow
from shared.schemas import TaskOut
from shared.titles import title_from
from shared.tools import ToolCall

# The worker's finish reasons, as OpenAI names them.
_FINISH: dict[str, str] = {
    FinishReason.STOP: "stop",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CANCEL: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TIMEOUT: "length",
}


# No tokenizer puts more characters than this in one token, so a request longer than the context
# window times this can never fit: it is refused before anything is stored.
CHARS_PER_TOKEN_AT_MOST = 8


@dataclass(frozen=True)
class Bounds:
    """The operator's limits on one request: queue room, message and prompt size, reply length."""

    max_queue: int
    max_chars: int
    max_tokens: int
    max_prompt_chars: int


def operator_user(request: ChatCompletionRequest) -> str:
    """With the operator's key, `user` names the conversation's owner (admin use of /v1)."""
    return openai_user(request.user)


def submit(
    db: Database,
    queue: Queue,
    request: ChatCompletionRequest,
    user_id: str,
    bounds: Bounds,
    limits: Limits | None = None,
) -> str:
    """Record the request's conversation and queue its answer; returns the task id."""
    limits = limits or Limits()
    # Parts other than text were refused when the request was validated.
    texts = [(m.role, m.text()) for m in request.messages]
    spec = request.tool_spec
    transcript = request.transcript() if request.uses_tools else None
    if texts[-1][0] == "user" and len(texts[-1][1]) > bounds.max_chars:
        raise OpenAIError(
            400,
            f"the last message is longer than {bounds.max_chars} characters",
            "invalid_request_error",
            "string_above_max_length",
        )
    size = sum(len(text) for _, text in texts)
    if transcript is not None:
        # Calls, results and the tools' own descriptions take room in the prompt too.
        size = len(json.dumps(transcript, ensure_ascii=False)) + len(spec.model_dump_json() if spec else "")
    if size > bounds.max_prompt_chars:
        raise OpenAIError(
            400,
            "the messages are longer than the model's context window; send fewer or shorter ones",
            "invalid_request_error",
            "context_length_exceeded",
        )
    admit(queue, user_id, limits)
    system = "\n\n".join(text for role, text in texts if role in ("system", "developer"))
    reply_limit = min(request.reply_limit or bounds.max_tokens, bounds.max_tokens)
    now = utcnow()
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        admit_within(session, user, limits, bounds.max_queue)
        if request.documents:
            _ensure_documents(session, user, request.documents)
        conversation = Conversation(user_id=user.id, chat_id=OPENAI_CHAT, title=title_from(texts[-1][1]))
        session.add(conversation)
        session.flush()
        asked: list[str] = []
        if transcript is not None:
            # The worker reads the conversation whole from the transcript; the task's message is
            # what it answers: the user's words, or the tools' results since the last call.
            asked = [text for role, text in texts[_last_turn(texts) : -1]]
        else:
            for role, text in texts[:-1]:
                if role == "user":
                    asked.append(text)
                elif role == "assistant":
                    # An earlier turn, recorded as an answered exchange so the worker sees it as history.
                    add_exchange(session, user, conversation.id, "\n\n".join(asked), text, now)
                    asked = []
        # The request's own system messages and sampling; personas are for our own clients.
        task = new_task(
            session,
            user,
            conversation.id,
            "\n\n".join([*asked, texts[-1][1]]),
            persona=None,
            # The person's own instructions, then the request's system messages.
            system_prompt="\n\n".join(part for part in (user.instructions, system) if part) or None,
            max_tokens=reply_limit,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop=json.dumps(request.stops) if request.stops else None,
            response_format=request.structured,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            tools=spec.model_dump_json() if spec is not None else None,
            transcript=json.dumps(transcript, ensure_ascii=False) if transcript is not None else None,
            document_ids=json.dumps(request.documents) if request.documents else None,
        )
    enqueue_or_undo(db, queue, task)
    return task.id


def _ensure_documents(session: Session, user: User, named: list[str]) -> None:
    """Refuse documents that are not the person's, or not read (the same words for both)."""
    read = set(
        session.scalars(
            select(Document.id).where(
                Document.user_id == user.id, Document.id.in_(named), Document.status == TaskStatus.FINISHED
            )
        )
    )
    missing = [document for document in named if document not in read]
    if missing:
        raise OpenAIError(
            400,
            f"documents: no read document of yours with the id {missing[0]!r}",
            "invalid_request_error",
            "document_not_found",
        )


def _last_turn(texts: Sequence[tuple[str, str]]) -> int:
    """Where the newest run of messages of the last one's kind begins (users' or tools')."""
    start = len(texts) - 1
    while start > 0 and texts[start - 1][0] == texts[-1][0]:
        start -= 1
    return start


async def _cancel_shielded(db: Database, queue: Queue, task_id: str) -> None:
    # Runs while the request is being torn down: shield it, or the cancel itself is cancelled.
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(cancel, db, queue, task_id)


def _usage(status: TaskOut) -> Usage:
    prompt, completion = status.usage.prompt_tokens or 0, status.usage.completion_tokens or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _raise_for_failure(status: TaskOut) -> None:
    if status.status != TaskStatus.FAILED:
        return
    if status.finish_reason == FinishReason.CONTEXT_LENGTH:
        raise OpenAIError(
            400, status.error or "the prompt is too long", "invalid_request_error", "context_length_exceeded"
        )
    raise OpenAIError(500, status.error or "generation failed", "server_error")


async def complete(
    db: Database,
    queue: Queue,
    changes: TaskChanges,
    task_id: str,
    model: str,
    disconnected: Callable[[], Awaitable[bool]],
) -> ChatCompletion:
    """Wait for the answer; a client that hangs up cancels it."""
    final: TaskOut | None = None
    async for status in follow(db, changes, task_id, disconnected):
        final = status
    if final is None or final.status not in (TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.CANCELED):
        await _cancel_shielded(db, queue, task_id)
        raise OpenAIError(499, "the client closed the request", "invalid_request_error")
    _raise_for_failure(final)
    message: dict[str, object] = {"role": "assistant", "content": final.answer or ""}
    if final.tool_calls:
        # OpenAI's shape: no words beside the calls is `null`, not an empty string.
        message = {**message, "content": final.answer or None, "tool_calls": _calls(final.tool_calls)}
    return ChatCompletion(
        id=f"chatcmpl-{task_id}",
        created=int(final.created_at.timestamp()),
        model=final.model or model,
        choices=[Choice(message=message, finish_reason=_FINISH.get(final.finish_reason or "stop", "stop"))],
        usage=_usage(final),
        sources=final.sources,
    )


def _calls(calls: list[ToolCall], streamed: bool = False) -> list[dict[str, object]]:
    """An answer's tool calls as OpenAI writes them; streamed, each with its place in the list."""
    return [
        {
            **({"index": n} if streamed else {}),
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for n, call in enumerate(calls)
    ]


async def stream(
    db: Database,
    queue: Queue,
    changes: TaskChanges,
    task_id: str,
    model: str,
    disconnected: Callable[[], Awaitable[bool]],
    include_usage: bool = False,
) -> AsyncIterator[str]:
    """OpenAI's streaming format: `data: {chunk}` lines, then `data: [DONE]`. Hanging up cancels.

    The last chunk with a choice carries the usage; with `include_usage` (stream_options) a chunk
    of its own follows with the usage and no choices, as OpenAI's clients expect."""
    created = int(time.time())
    base = {
        "id": f"chatcmpl-{task_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }

    def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> str:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    diff = TextDiff()
    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for status in follow(db, changes, task_id, disconnected):
            text = (
                status.answer
                if status.status in (TaskStatus.FINISHED, TaskStatus.CANCELED)
                else status.partial_text
            )
            piece = diff.delta(text) if text else ""
            if piece:
                yield chunk({"content": piece})
            if status.status == TaskStatus.FAILED:
                finished = True
                code = (
                    "context_length_exceeded" if status.finish_reason == FinishReason.CONTEXT_LENGTH else None
                )
                error = {"message": status.error or "generation failed", "type": "server_error", "code": code}
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            if status.status in (TaskStatus.FINISHED, TaskStatus.CANCELED):
                finished = True
                if status.tool_calls:
                    # Each call whole in one delta: its arguments are known valid only once complete.
                    yield chunk({"tool_calls": _calls(status.tool_calls, streamed=True)})
                reason = _FINISH.get(status.finish_reason or "stop", "stop")
                usage = _usage(status).model_dump()
                sources = {"sources": [s.model_dump() for s in status.sources]} if status.sources else {}
                yield chunk({}, reason, usage=usage, **sources)
                if include_usage:
                    yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
                return
    finally:
        if not finished:
            # The client closed the stream: stop the answer in the worker too.
            await _cancel_shielded(db, queue, task_id)
