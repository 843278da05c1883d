"""A person's conversations: start, list, rename, switch to, delete and export them.

Each route acts only on what the caller owns: a conversation of someone else is 404, a path naming
another user is 403 (see `api.auth`).
"""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from api.auth import CallerDep, OwnUserDep
from api.deps import ChatIdQuery, DbDep, OwnedConversationDep
from api.services import conversations, users
from shared.account_schemas import ConversationExport, ConversationRename, ConversationSummary, UserExport
from shared.schemas import ConversationOut, NewConversationRequest

router = APIRouter(prefix="/api", tags=["conversations"])


class ExportFormat(enum.StrEnum):
    MARKDOWN = "md"
    JSON = "json"


class Language(enum.StrEnum):
    EN = "en"
    RU = "ru"


@router.post("/conversations", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
def start_conversation(body: NewConversationRequest, caller: CallerDep, db: DbDep) -> ConversationOut:
    """Start a new conversation for the user: later messages do not see the earlier ones."""
    user_id = caller.acting_for(body.user_id)
    return ConversationOut(conversation_id=users.new_conversation(db, user_id, body.chat_id))


@router.get("/users/{user_id:path}/conversations", response_model=list[ConversationSummary])
def list_conversations(
    user_id: OwnUserDep,
    db: DbDep,
    chat_id: ChatIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ConversationSummary]:
    """The user's conversations in one chat, the current one first, then by last use."""
    return conversations.listing(db, user_id, chat_id, limit)


@router.patch("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
def rename_conversation(
    conversation_id: OwnedConversationDep, body: ConversationRename, db: DbDep
) -> Response:
    conversations.rename(db, conversation_id, body.title)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/conversations/{conversation_id}/activate", status_code=status.HTTP_204_NO_CONTENT)
def activate_conversation(conversation_id: OwnedConversationDep, db: DbDep) -> Response:
    """Switch back to this conversation: the next message in its chat continues it."""
    conversations.activate(db, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_conversation(conversation_id: OwnedConversationDep, db: DbDep) -> Response:
    """Delete the conversation and everything in it (409 while one of its answers is being written)."""
    conversations.remove(db, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/conversations/{conversation_id}/export",
    response_model=ConversationExport,
    responses={200: {"content": {"text/markdown": {}}}},
)
def export_conversation(
    conversation_id: OwnedConversationDep,
    db: DbDep,
    format: ExportFormat = ExportFormat.MARKDOWN,
    lang: Language = Language.EN,
) -> Response:
    """The conversation as a file: Markdown to read and keep, or JSON for programs."""
    exported = conversations.export(db, conversation_id)
    name = f"conversation-{conversation_id}.{format.value}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == ExportFormat.JSON:
        return JSONResponse(exported.model_dump(mode="json"), headers=disposition)
    text = conversations.markdown(exported, lang.value)
    return Response(text, media_type="text/markdown; charset=utf-8", headers=disposition)


@router.get("/users/{user_id:path}/export", response_model=UserExport)
def export_user(user_id: OwnUserDep, db: DbDep) -> UserExport:
    """Everything kept about the user, as JSON (deleting it all is DELETE /api/users/{user_id})."""
    return conversations.export_user(db, user_id)
