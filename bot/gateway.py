"""The bot's HTTP client of the gateway: the only way the bot reaches the queue and the history."""

from __future__ import annotations

import json
import logging
from types import GenericAlias
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.account_schemas import ConversationSummary, Quota
from shared.enums import AccessStatus
from shared.schemas import (
    AccessOut,
    ChatAccepted,
    DocumentOut,
    ErrorCode,
    ErrorOut,
    InviteOut,
    PersonaOut,
    RevokedOut,
    SystemStatus,
    TaskOut,
    UserSettingsOut,
    UserStats,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


class GatewayUnavailable(Exception):
    """The gateway could not be reached, or said it cannot take work now (5xx)."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        # True when the gateway is up but its queue is full: a different thing to tell the user.
        self.busy = busy


class GatewayRejected(Exception):
    """The gateway refused the request (4xx): `error` is its body (code, sentence, limit)."""

    def __init__(self, status: int, error: ErrorOut) -> None:
        super().__init__(f"{status}: {error.code} {error.detail}")
        self.status = status
        self.error = error

    @property
    def detail(self) -> str:
        return self.error.detail


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            error = _error(response)
            busy = error.code == ErrorCode.QUEUE_FULL
            raise GatewayUnavailable(f"{method} {path}: {response.status_code} {error.detail}", busy=busy)
        if response.status_code >= 400:
            raise GatewayRejected(response.status_code, _error(response))
        return response

    async def _call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """A request whose answer is parsed into the shared schema the gateway answers with."""
        response = await self._request(method, path, **kwargs)
        return _parse(model, response)

    async def _call_list(self, model: type[M], method: str, path: str, **kwargs: Any) -> list[M]:
        response = await self._request(method, path, **kwargs)
        return _parse_list(model, response)

    async def chat(
        self, user_id: str, text: str, chat_id: str, idempotency_key: str, client_meta: Json
    ) -> tuple[ChatAccepted, bool]:
        """Send a message; returns the accepted task and whether it was an earlier twin."""
        response = await self._request(
            "POST",
            "/api/chat",
            json={
                "user_id": user_id,
                "text": text,
                "chat_id": chat_id,
                "idempotency_key": idempotency_key,
                "client_meta": client_meta,
            },
        )
        return _parse(ChatAccepted, response), response.headers.get("Idempotent-Replayed") == "true"

    async def chat_voice(
        self,
        user_id: str,
        audio: bytes,
        duration: int | None,
        chat_id: str,
        idempotency_key: str,
        client_meta: Json,
    ) -> tuple[ChatAccepted, bool]:
        """Send a voice note as a message (heard by a worker, then answered); as `chat` returns."""
        form = {"user_id": user_id, "chat_id": chat_id, "idempotency_key": idempotency_key}
        form["client_meta"] = json.dumps(client_meta)
        if duration is not None:
            form["duration"] = str(duration)
        response = await self._request(
            "POST",
            "/api/chat/voice",
            data=form,
            files={"file": ("voice.ogg", audio, "audio/ogg")},
            # An upload of a few megabytes to a gateway on the same box; more than a JSON request.
            timeout=self._timeout * 6,
        )
        return _parse(ChatAccepted, response), response.headers.get("Idempotent-Replayed") == "true"

    async def send_document(self, user_id: str, name: str, data: bytes, chat_id: str) -> DocumentOut:
        """A document for the person's current conversation in `chat_id`, to be read by a worker."""
        response = await self._request(
            "POST",
            "/api/documents",
            data={"user_id": user_id, "chat_id": chat_id},
            files={"file": (name, data, "application/octet-stream")},
            timeout=self._timeout * 6,
        )
        return _parse(DocumentOut, response)

    async def document(self, user_id: str, document_id: str) -> DocumentOut:
        return await self._call(
            DocumentOut, "GET", f"/api/documents/{document_id}", params={"user_id": user_id}
        )

    async def documents(self, user_id: str) -> list[DocumentOut]:
        return await self._call_list(DocumentOut, "GET", f"/api/users/{user_id}/documents")

    async def delete_document(self, user_id: str, document_id: str) -> None:
        await self._request("DELETE", f"/api/documents/{document_id}", params={"user_id": user_id})

    async def status(self, task_id: str) -> TaskOut:
        return await self._call(TaskOut, "GET", f"/api/status/{task_id}")

    async def watch(self, task_id: str, tag: str | None, wait: float) -> tuple[TaskOut | None, str | None]:
        """The task's status and ETag once it differs from `tag`, waiting up to `wait` seconds.

        A long poll: the gateway answers as soon as the task changes. (None, tag) when it has not.
        """
        response = await self._request(
            "GET",
            f"/api/status/{task_id}",
            params={"wait": wait},
            headers={"If-None-Match": tag} if tag else {},
            timeout=wait + self._timeout,
        )
        if response.status_code == 304:
            return None, tag
        return _parse(TaskOut, response), response.headers.get("ETag")

    async def cancel(self, task_id: str, acting_for: str | None = None) -> TaskOut:
        return await self._call(
            TaskOut, "POST", f"/api/tasks/{task_id}/cancel", headers=_acting_for(acting_for)
        )

    async def regenerate(
        self, task_id: str, acting_for: str | None = None, text: str | None = None
    ) -> ChatAccepted:
        """Answer again (`text`: the message as corrected); with `acting_for`, only if the task is
        that person's (404 otherwise)."""
        return await self._call(
            ChatAccepted,
            "POST",
            f"/api/tasks/{task_id}/regenerate",
            headers=_acting_for(acting_for),
            json={"text": text} if text is not None else None,
        )

    async def note(self, task_id: str, client_meta: Json | None = None, delivered: bool = False) -> TaskOut:
        body: Json = {"delivered": delivered}
        if client_meta is not None:
            body["client_meta"] = client_meta
        return await self._call(TaskOut, "PATCH", f"/api/tasks/{task_id}", json=body)

    async def undelivered(self, user_prefix: str) -> list[TaskOut]:
        return await self._call_list(
            TaskOut, "GET", "/api/tasks/undelivered", params={"user_prefix": user_prefix}
        )

    async def new_conversation(self, user_id: str, chat_id: str) -> None:
        await self._request("POST", "/api/conversations", json={"user_id": user_id, "chat_id": chat_id})

    async def latest_task(self, user_id: str, chat_id: str) -> TaskOut | None:
        try:
            return await self._call(
                TaskOut, "GET", f"/api/users/{user_id}/latest-task", params={"chat_id": chat_id}
            )
        except GatewayRejected as exc:
            if exc.status == 404:
                return None
            raise

    async def stats(self, user_id: str) -> UserStats:
        return await self._call(UserStats, "GET", f"/api/users/{user_id}/stats")

    async def personas(self) -> list[PersonaOut]:
        return await self._call_list(PersonaOut, "GET", "/api/personas")

    async def persona(self, user_id: str) -> str:
        return (await self.settings(user_id)).persona

    async def set_persona(self, user_id: str, persona: str) -> None:
        await self._request("PUT", f"/api/users/{user_id}/persona", json={"persona": persona})

    async def request_access(self, user_id: str, display_name: str | None) -> AccessOut:
        """File an access request (once); the answer says where the person stands."""
        return await self._call(
            AccessOut, "POST", f"/api/users/{user_id}/access-request", json={"display_name": display_name}
        )

    async def set_access(self, user_id: str, access: AccessStatus) -> AccessOut:
        return await self._call(AccessOut, "PUT", f"/api/users/{user_id}/access", json={"access": access})

    async def access_list(self, status: AccessStatus | None = None) -> list[AccessOut]:
        params = {"status": status.value} if status else {}
        return await self._call_list(AccessOut, "GET", "/api/access", params=params)

    async def sign_out_everywhere(self, user_id: str) -> int:
        """End every web session and API token of this user; returns how many there were."""
        return (await self._call(RevokedOut, "DELETE", f"/api/users/{user_id}/credentials")).revoked

    async def invite(self, user_id: str) -> InviteOut:
        """A one-time personal link to the web page for this user."""
        return await self._call(InviteOut, "POST", f"/api/users/{user_id}/invites")

    async def conversations(self, user_id: str, chat_id: str, limit: int = 10) -> list[ConversationSummary]:
        return await self._call_list(
            ConversationSummary,
            "GET",
            f"/api/users/{user_id}/conversations",
            params={"chat_id": chat_id, "limit": limit},
        )

    async def activate(self, conversation_id: int, acting_for: str) -> None:
        """Switch back to a conversation; only one of `acting_for`'s (404 otherwise)."""
        await self._request(
            "POST", f"/api/conversations/{conversation_id}/activate", headers=_acting_for(acting_for)
        )

    async def delete_conversation(self, conversation_id: int, acting_for: str) -> None:
        await self._request(
            "DELETE", f"/api/conversations/{conversation_id}", headers=_acting_for(acting_for)
        )

    async def export(self, conversation_id: int, lang: str, acting_for: str) -> bytes:
        """The conversation as a Markdown file, in the reader's language."""
        response = await self._request(
            "GET",
            f"/api/conversations/{conversation_id}/export",
            params={"format": "md", "lang": lang},
            headers=_acting_for(acting_for),
        )
        return response.content

    async def export_user(self, user_id: str) -> bytes:
        """Everything kept about the person, as the gateway's JSON."""
        return (await self._request("GET", f"/api/users/{user_id}/export")).content

    async def settings(self, user_id: str) -> UserSettingsOut:
        return await self._call(UserSettingsOut, "GET", f"/api/users/{user_id}/settings")

    async def set_instructions(self, user_id: str, instructions: str | None) -> UserSettingsOut:
        return await self._call(
            UserSettingsOut, "PUT", f"/api/users/{user_id}/instructions", json={"instructions": instructions}
        )

    async def set_speech_language(self, user_id: str, language: str | None) -> UserSettingsOut:
        return await self._call(
            UserSettingsOut, "PUT", f"/api/users/{user_id}/speech-language", json={"language": language}
        )

    async def quota(self, user_id: str) -> Quota:
        return await self._call(Quota, "GET", f"/api/users/{user_id}/quota")

    async def set_quota(self, user_id: str, per_day: int | None, per_month: int | None) -> Quota:
        body = {"per_day": per_day, "per_month": per_month}
        return await self._call(Quota, "PUT", f"/api/users/{user_id}/quota", json=body)

    async def system(self) -> SystemStatus:
        return await self._call(SystemStatus, "GET", "/api/system")


def _acting_for(user_id: str | None) -> dict[str, str]:
    return {"X-Acting-For": user_id} if user_id else {}


def _parse(model: type[M], response: httpx.Response) -> M:
    """The body in its shared schema; one that does not fit is the gateway's fault, not the user's."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise _unexpected(response, exc) from exc


_LISTS: dict[type[BaseModel], TypeAdapter[Any]] = {}


def _parse_list(model: type[M], response: httpx.Response) -> list[M]:
    adapter = _LISTS.get(model)
    if adapter is None:
        adapter = _LISTS[model] = TypeAdapter(GenericAlias(list, (model,)))
    try:
        items: list[M] = adapter.validate_json(response.content)
    except ValidationError as exc:
        raise _unexpected(response, exc) from exc
    return items


def _unexpected(response: httpx.Response, exc: ValidationError) -> GatewayUnavailable:
    request = response.request
    return GatewayUnavailable(f"{request.method} {request.url.path}: unexpected answer: {exc}")


def _error(response: httpx.Response) -> ErrorOut:
    """The gateway's error body; something else in front of it (a proxy) answers in its own way."""
    try:
        return ErrorOut.model_validate_json(response.content)
    except ValueError:
        fallback = ErrorCode.INTERNAL if response.status_code >= 500 else ErrorCode.INVALID_INPUT
        return ErrorOut(detail=response.text[:200], code=fallback)
