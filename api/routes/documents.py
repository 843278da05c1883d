"""Documents people ask about: sent (multipart), listed, shown with their reading's progress, and
deleted. Each route acts only on the caller's own documents: another person's is 404, a path naming
another user is 403 (see `api.auth`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, OwnUserDep
from api.deps import DbDep, DocumentSettingsDep, GatewaySettingsDep, QueueDep, QueueSettingsDep
from api.services import documents, tasks
from shared.schemas import ClientId, DocumentOut

router = APIRouter(prefix="/api", tags=["documents"])

DocumentId = Annotated[str, Query(min_length=1, max_length=64)]


@router.post("/documents", status_code=status.HTTP_202_ACCEPTED, response_model=DocumentOut)
async def send_document(
    caller: CallerDep,
    db: DbDep,
    queue: QueueDep,
    gateway: GatewaySettingsDep,
    queue_settings: QueueSettingsDep,
    settings: DocumentSettingsDep,
    file: Annotated[UploadFile, File(description="PDF, DOCX, HTML, Markdown or plain text.")],
    user_id: Annotated[ClientId | None, Form()] = None,
    chat_id: Annotated[ClientId | None, Form()] = None,
) -> DocumentOut:
    """A document for the person's current conversation (in `chat_id`): read by a worker, then
    its passages answer the questions asked there. Follow its reading at /api/documents/{id}."""
    person = caller.acting_for(user_id)
    data = await file.read(settings.document_max_bytes + 1)
    return await run_in_threadpool(
        documents.submit,
        db,
        queue,
        person,
        chat_id,
        file.filename or "document",
        data,
        settings,
        tasks.Limits.of(gateway),
        queue_settings.max_queue_length,
    )


@router.get("/users/{user_id:path}/documents", response_model=list[DocumentOut])
def list_documents(
    user_id: OwnUserDep,
    db: DbDep,
    conversation_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> list[DocumentOut]:
    """The person's documents (of one conversation, if given), newest first."""
    return documents.listing(db, user_id, conversation_id)


@router.get("/documents/{document_id}", response_model=DocumentOut)
def show_document(document_id: str, caller: CallerDep, db: DbDep, user_id: str | None = None) -> DocumentOut:
    """A document and how far its reading got (pages read of pages), or why it could not be read."""
    return documents.get(db, caller.acting_for(user_id), document_id)


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_document(document_id: str, caller: CallerDep, db: DbDep, user_id: str | None = None) -> Response:
    """Delete a document, its passages and their place in the search index."""
    documents.remove(db, caller.acting_for(user_id), document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
