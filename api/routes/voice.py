"""Voice notes: sent as a chat message (/api/chat/voice), or transcribed on their own in OpenAI's
shape (/v1/audio/transcriptions). Both are queued for the workers like chat messages."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, CallerRole, OpenAIClientDep
from api.deps import (
    ChangesDep,
    DbDep,
    GatewaySettingsDep,
    QueueDep,
    QueueSettingsDep,
    StreamsDep,
    VoiceSettingsDep,
)
from api.errors import OpenAIError
from api.routes.chat import submitted
from api.services import tasks, voice
from api.services.voice_notes import Upload, VoiceRefused, check_upload
from shared.enums import FinishReason
from shared.identity import openai_user
from shared.schemas import VOICE_PLACEHOLDER, ChatAccepted, ChatRequest

router = APIRouter(tags=["voice"])

Language = Annotated[str | None, Form(pattern=r"^[a-z]{2,3}$", description="ISO 639-1; unset: detected.")]


async def _read(file: UploadFile, settings: VoiceSettingsDep, declared: float | None = None) -> bytes:
    audio = await file.read(settings.voice_max_bytes + 1)
    check_upload(settings, audio, declared)
    return audio


@router.post("/api/chat/voice", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
async def post_voice(
    response: Response,
    caller: CallerDep,
    db: DbDep,
    queue: QueueDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
    settings: VoiceSettingsDep,
    file: Annotated[
        UploadFile, File(description="The audio: Opus in OGG as Telegram sends it, or any common format.")
    ],
    user_id: Annotated[str | None, Form()] = None,
    chat_id: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[str | None, Form()] = None,
    client_meta: Annotated[str | None, Form(description="JSON object: the client's delivery notes.")] = None,
    duration: Annotated[
        float | None, Form(ge=0, description="The note's length as the client knows it.")
    ] = None,
    language: Language = None,
) -> ChatAccepted:
    """A voice note as a chat message: heard by a worker, then answered as if typed.

    Follow it like any task (/api/status, /api/tasks/{id}/events): `voice.transcript` appears
    once the words are known, then the answer is written.
    """
    caller.check_client_meta(client_meta)
    audio = await _read(file, settings, duration)
    try:
        meta = json.loads(client_meta) if client_meta is not None else None
        request = ChatRequest(
            user_id=caller.acting_for(user_id),
            text=VOICE_PLACEHOLDER,
            chat_id=chat_id,
            idempotency_key=idempotency_key,
            client_meta=meta,
        )
    except (ValidationError, ValueError) as exc:
        errors = (
            exc.errors() if isinstance(exc, ValidationError) else [{"loc": ["client_meta"], "msg": str(exc)}]
        )
        raise RequestValidationError(errors) from None
    task, replayed = await run_in_threadpool(
        tasks.submit_chat,
        db,
        queue,
        request,
        queue_settings.max_queue_length,
        tasks.Limits.of(gateway),
        Upload(audio, language),
    )
    return await run_in_threadpool(submitted, db, task, replayed, response)


_OPENAI_REFUSALS = {
    FinishReason.VOICE_UNREADABLE: "The file could not be decoded as audio.",
    FinishReason.VOICE_TOO_LONG: "The audio is longer than this server transcribes.",
    FinishReason.VOICE_LANGUAGE: "The speech model of this server does not know that language.",
    FinishReason.VOICE_UNAVAILABLE: "The speech model of this server is not available.",
}


def _refusal(code: str | None) -> OpenAIError:
    message = _OPENAI_REFUSALS.get(FinishReason(code)) if code in _OPENAI_REFUSALS else None
    if message is None:  # failed here after waiting (a worker lost, or a queue too long)
        return OpenAIError(504, "The transcription took too long.", "server_error", "timeout")
    if code == FinishReason.VOICE_UNAVAILABLE:
        return OpenAIError(503, message, "server_error", code)
    return OpenAIError(400, message, "invalid_request_error", code)


@router.post("/v1/audio/transcriptions", response_model=None)
async def transcriptions(
    caller: OpenAIClientDep,
    db: DbDep,
    queue: QueueDep,
    changes: ChangesDep,
    streams: StreamsDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
    settings: VoiceSettingsDep,
    file: Annotated[UploadFile, File()],
    model: Annotated[
        str, Form(max_length=128, description="Accepted for compatibility; ignored.")
    ] = "whisper-1",
    language: Language = None,
    response_format: Annotated[str, Form(pattern="^(json|text|verbose_json)$")] = "json",
) -> dict[str, object] | PlainTextResponse:
    """Speech to text, in OpenAI's shape (json, text or verbose_json), queued like chat messages."""
    try:
        audio = await _read(file, settings)
    except VoiceRefused as exc:
        raise OpenAIError(exc.status, str(exc), "invalid_request_error", exc.code) from None
    user_id = caller.user_id if caller.role == CallerRole.PERSON else openai_user(None)
    assert user_id is not None
    note_id = await run_in_threadpool(
        voice.submit_transcription,
        db,
        queue,
        user_id,
        Upload(audio, language),
        tasks.Limits.of(gateway),
        queue_settings.max_queue_length,
    )
    # The request waits on an open connection, as a long poll does: it counts as one of the
    # person's streams (MAX_STREAMS_PER_USER).
    with streams.hold(user_id):
        result = await voice.wait_for(db, changes, note_id, queue_settings.job_timeout_seconds)
    if result.text is None and result.error_code != FinishReason.VOICE_EMPTY:
        raise _refusal(result.error_code)
    text = result.text or ""
    if response_format == "text":
        return PlainTextResponse(text + "\n")
    if response_format == "verbose_json":
        return {
            "task": "transcribe",
            "language": result.language,
            "duration": result.duration_seconds,
            "text": text,
        }
    return {"text": text}
