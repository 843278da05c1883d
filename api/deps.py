"""Request-scoped dependencies: the resources opened in the lifespan, and what the caller owns.

They are coroutines although none of them waits on anything: FastAPI runs a plain function
dependency in its thread pool, and a thread hop per dependency costs more than the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from rq import Queue
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep
from api.services import NotFound, conversations, tasks
from api.services.changes import TaskChanges
from api.services.streams import StreamSlots
from shared.config import DocumentSettings, GatewaySettings, ModelSettings, QueueSettings, VoiceSettings
from shared.db import Database


async def get_db(request: Request) -> Database:
    db: Database = request.state.db
    return db


async def get_queue(request: Request) -> Queue:
    queue: Queue = request.state.queue
    return queue


async def get_changes(request: Request) -> TaskChanges:
    changes: TaskChanges = request.state.changes
    return changes


async def get_gateway_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.state.gateway_settings
    return settings


async def get_queue_settings(request: Request) -> QueueSettings:
    settings: QueueSettings = request.state.queue_settings
    return settings


async def get_model_settings(request: Request) -> ModelSettings:
    settings: ModelSettings = request.state.model_settings
    return settings


async def get_voice_settings(request: Request) -> VoiceSettings:
    settings: VoiceSettings = request.state.voice_settings
    return settings


async def get_document_settings(request: Request) -> DocumentSettings:
    settings: DocumentSettings = request.state.document_settings
    return settings


async def get_streams(request: Request) -> StreamSlots:
    streams: StreamSlots = request.state.streams
    return streams


# Where a person talks from (a chat, a group, a topic): each has its own conversations.
ChatIdQuery = Annotated[str | None, Query(max_length=128)]
DbDep = Annotated[Database, Depends(get_db)]
QueueDep = Annotated[Queue, Depends(get_queue)]
ChangesDep = Annotated[TaskChanges, Depends(get_changes)]
GatewaySettingsDep = Annotated[GatewaySettings, Depends(get_gateway_settings)]
QueueSettingsDep = Annotated[QueueSettings, Depends(get_queue_settings)]
ModelSettingsDep = Annotated[ModelSettings, Depends(get_model_settings)]
VoiceSettingsDep = Annotated[VoiceSettings, Depends(get_voice_settings)]
DocumentSettingsDep = Annotated[DocumentSettings, Depends(get_document_settings)]
StreamsDep = Annotated[StreamSlots, Depends(get_streams)]


@dataclass(frozen=True)
class OwnedTask:
    id: str
    # The user id of the person the task answers (streams are counted against them).
    owner: str


async def owned_task(task_id: str, caller: CallerDep, db: DbDep, changes: ChangesDep) -> OwnedTask:
    """The task of the path, once the caller is known to own it (404 otherwise: no hints)."""
    owner = changes.cache.owner(task_id)
    if owner is None:
        owner = await run_in_threadpool(tasks.owner_of, db, task_id)
        if owner is not None:
            changes.cache.remember_owner(task_id, owner)
    if owner is None or not caller.may_act_for(owner):
        raise NotFound("No task with this id.")
    return OwnedTask(task_id, owner)


OwnedTaskDep = Annotated[OwnedTask, Depends(owned_task)]


# The column is a 32-bit integer on PostgreSQL: a larger id is refused here, not by the database.
ConversationId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A conversation's id.")]


async def owned_conversation(conversation_id: ConversationId, caller: CallerDep, db: DbDep) -> int:
    """The conversation of the path, once the caller is known to own it (404 otherwise: no hints)."""
    owner = await run_in_threadpool(conversations.owner_of, db, conversation_id)
    if owner is None or not caller.may_act_for(owner):
        raise NotFound("No conversation with this id.")
    return conversation_id


OwnedConversationDep = Annotated[int, Depends(owned_conversation)]
