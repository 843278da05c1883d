"""The bot's HTTP client of the gateway: the only way the bot reaches the queue and the history."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shared.schemas import ErrorCode, ErrorOut

log = logging.getLogger(__name__)

Json = dict[str, Any]


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

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._request(method, path, **kwargs)).json()

    async def chat(
        self, user_id: str, text: str, chat_id: str, idempotency_key: str, client_meta: Json
    ) -> tuple[Json, bool]:
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
        return response.json(), response.headers.get("Idempotent-Replayed") == "true"

    async def status(self, task_id: str) -> Json:
        result: Json = await self._call("GET", f"/api/status/{task_id}")
        return result

    async def watch(self, task_id: str, tag: str | None, wait: float) -> tuple[Json | None, str | None]:
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
        status: Json = response.json()
        return status, response.headers.get("ETag")

    async def cancel(self, task_id: str, acting_for: str | None = None) -> Json:
        result: Json = await self._call(
            "POST", f"/api/tasks/{task_id}/cancel", headers=_acting_for(acting_for)
        )
        return result

    async def regenerate(self, task_id: str, acting_for: str | None = None) -> Json:
        """Answer again; with `acting_for`, only if the task is that person's (404 otherwise)."""
        result: Json = await self._call(
            "POST", f"/api/tasks/{task_id}/regenerate", headers=_acting_for(acting_for)
        )
        return result

    async def note(self, task_id: str, client_meta: Json | None = None, delivered: bool = False) -> Json:
        body: Json = {"delivered": delivered}
        if client_meta is not None:
            body["client_meta"] = client_meta
        result: Json = await self._call("PATCH", f"/api/tasks/{task_id}", json=body)
        return result

    async def undelivered(self, user_prefix: str) -> list[Json]:
        result: list[Json] = await self._call(
            "GET", "/api/tasks/undelivered", params={"user_prefix": user_prefix}
        )
        return result

    async def new_conversation(self, user_id: str, chat_id: str) -> None:
        await self._call("POST", "/api/conversations", json={"user_id": user_id, "chat_id": chat_id})

    async def latest_task(self, user_id: str, chat_id: str) -> Json | None:
        try:
            result: Json = await self._call(
                "GET", f"/api/users/{user_id}/latest-task", params={"chat_id": chat_id}
            )
        except GatewayRejected as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def stats(self, user_id: str) -> Json:
        result: Json = await self._call("GET", f"/api/users/{user_id}/stats")
        return result

    async def personas(self) -> list[Json]:
        result: list[Json] = await self._call("GET", "/api/personas")
        return result

    async def persona(self, user_id: str) -> str:
        result: Json = await self._call("GET", f"/api/users/{user_id}/settings")
        return str(result["persona"])

    async def set_persona(self, user_id: str, persona: str) -> None:
        await self._call("PUT", f"/api/users/{user_id}/persona", json={"persona": persona})

    async def request_access(self, user_id: str, display_name: str | None) -> Json:
        """File an access request (once); the answer says where the person stands."""
        result: Json = await self._call(
            "POST", f"/api/users/{user_id}/access-request", json={"display_name": display_name}
        )
        return result

    async def set_access(self, user_id: str, access: str) -> Json:
        result: Json = await self._call("PUT", f"/api/users/{user_id}/access", json={"access": access})
        return result

    async def access_list(self, status: str | None = None) -> list[Json]:
        params = {"status": status} if status else {}
        result: list[Json] = await self._call("GET", "/api/access", params=params)
        return result

    async def invite(self, user_id: str) -> Json:
        """A one-time personal link to the web page for this user."""
        result: Json = await self._call("POST", f"/api/users/{user_id}/invites")
        return result

    async def system(self) -> Json:
        result: Json = await self._call("GET", "/api/system")
        return result


def _acting_for(user_id: str | None) -> dict[str, str]:
    return {"X-Acting-For": user_id} if user_id else {}


def _error(response: httpx.Response) -> ErrorOut:
    """The gateway's error body; something else in front of it (a proxy) answers in its own way."""
    try:
        return ErrorOut.model_validate_json(response.content)
    except ValueError:
        fallback = ErrorCode.INTERNAL if response.status_code >= 500 else ErrorCode.INVALID_INPUT
        return ErrorOut(detail=response.text[:200], code=fallback)
