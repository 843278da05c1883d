"""The gateway application: `create_app()` builds it; `uvicorn --factory api.main:create_app` serves it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.auth import Guard
from api.errors import RefuseNulInUrl, install_error_handlers
from api.headers import SecurityHeaders
from api.routes import (
    access,
    chat,
    conversations,
    credentials,
    documents,
    health,
    metrics,
    openai,
    session,
    system,
    users,
    voice,
    web,
)
from api.services.changes import TaskChanges
from api.services.credentials import purge_expired
from api.services.streams import StreamSlots
from shared.config import (
    DatabaseSettings,
    DocumentSettings,
    GatewaySettings,
    ModelSettings,
    QueueSettings,
    VoiceSettings,
)
from shared.db import Database
from shared.jobs import changes_channel, make_queue, make_redis
from shared.recovery import Periodic, recovery_thread
from shared.retention import purge_conversations, purge_embeddings, purge_voice

log = logging.getLogger(__name__)


def create_app(
    gateway_settings: GatewaySettings | None = None,
    database_settings: DatabaseSettings | None = None,
    queue_settings: QueueSettings | None = None,
    model_settings: ModelSettings | None = None,
    voice_settings: VoiceSettings | None = None,
    document_settings: DocumentSettings | None = None,
) -> FastAPI:
    """Build the gateway; settings default to the environment and `.env`.

    The model's settings are the worker's: the gateway reads its limits (MAX_TOKENS, N_CTX) and name."""
    gateway_settings = gateway_settings or GatewaySettings()
    database_settings = database_settings or DatabaseSettings()
    queue_settings = queue_settings or QueueSettings()
    model_settings = model_settings or ModelSettings()
    voice_settings = voice_settings or VoiceSettings()
    document_settings = document_settings or DocumentSettings()
    if gateway_settings.api_key is None:
        raise RuntimeError("API_KEY is not set: put one in .env (`make run` generates it).")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        db = Database.from_settings(database_settings)
        redis = make_redis(queue_settings)
        queue = make_queue(queue_settings, redis)
        background = [
            recovery_thread(
                db, queue, queue_settings.task_stale_after_seconds, document_settings.longest_read_seconds()
            ),
            Periodic("credentials", 3600, lambda: purge_expired(db)),
        ]
        if gateway_settings.retention_days:
            days = gateway_settings.retention_days
            background.append(Periodic("retention", 3600, lambda: purge_conversations(db, days)))
        keep = voice_settings.voice_keep_seconds
        background.append(Periodic("voice", max(60, min(3600, keep)), lambda: purge_voice(db, keep)))
        background.append(Periodic("embeddings", 600, lambda: purge_embeddings(db)))
        for thread in background:
            thread.start()
        changes = TaskChanges(queue_settings.redis_url, changes_channel(queue.name))
        changes.start()
        try:
            yield {
                "db": db,
                "queue": queue,
                "changes": changes,
                "gateway_settings": gateway_settings,
                "queue_settings": queue_settings,
                "model_settings": model_settings,
                "voice_settings": voice_settings,
                "document_settings": document_settings,
                "streams": StreamSlots(
                    gateway_settings.max_streams_per_user,
                    gateway_settings.max_streams_total,
                    gateway_settings.stream_max_seconds,
                ),
            }
        finally:
            await changes.aclose()
            for thread in background:
                thread.stop()
            redis.close()
            db.dispose()

    # No /docs or /redoc: their pages load scripts from a CDN, on the origin that holds sessions.
    app = FastAPI(
        title="ai_assistant gateway", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_error_handlers(app)
    # Outermost last: headers on everything, NUL refused, then who is asking (before any body).
    app.add_middleware(
        Guard,
        settings=gateway_settings,
        audio_max_bytes=voice_settings.voice_max_bytes,
        document_max_bytes=document_settings.document_max_bytes,
    )
    app.add_middleware(RefuseNulInUrl)
    app.add_middleware(SecurityHeaders)
    # credentials before users: `/users/{user_id:path}` would also match its longer paths.
    for router in (
        chat,
        voice,
        documents,
        credentials,
        users,
        conversations,
        access,
        session,
        system,
        openai,
        metrics,
        health,
        web,
    ):
        app.include_router(router.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    return app
