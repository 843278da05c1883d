"""A fake Telegram Bot API server on loopback, for running the real bot against it.

It keeps the chats' messages as Telegram would (sent, edited, drafts), hands out updates to
`getUpdates`, enforces the rules the bot must respect (4,096 characters, valid entities,
"message is not modified"), and can answer with flood control (429) on demand.
"""

from __future__ import annotations

import asyncio
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from stack.redis_server import free_port

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Assistant", "username": "test_assistant_bot"}
LIMIT = 4096


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class ChatMessage:
    chat: int
    message_id: int
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    edits: int = 0
    reply_to: int | None = None
    thread: int | None = None  # the forum topic it was sent to
    document: tuple[str, bytes] | None = None  # a file sent with sendDocument: its name and bytes


class FakeTelegram:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.lock = threading.Lock()
        self.updates: list[dict[str, Any]] = []
        self.update_ids = itertools.count(1)
        self.message_ids = itertools.count(500)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.times: list[float] = []
        self.messages: dict[tuple[int, int], ChatMessage] = {}
        self.drafts: dict[tuple[int, int], list[str]] = {}
        self.failures: dict[str, list[dict[str, Any]]] = {}
        self.drafts_supported = True
        # Files people sent (voice notes): file_id -> (file_path, bytes), served under /file/.
        self.files: dict[str, tuple[str, bytes]] = {}
        self.expired: set[str] = set()  # file paths whose download fails (Telegram's links expire)
        self.host = host
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- the server ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, control: bool = False) -> None:
        """Serve in a thread; `control` adds routes through which another process plays the user."""
        app = FastAPI()
        app.add_api_route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])
        app.add_api_route("/file/bot{token}/{path:path}", self._download, methods=["GET"])
        if control:
            app.add_api_route("/control/messages", self._control_send, methods=["POST"])
            app.add_api_route("/control/chats/{chat}", self._control_chat, methods=["GET"])
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the fake Telegram server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        # A long poll still open (its client gone) would hold the server's shutdown until it ends.
        self._stopping = True
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _endpoint(self, token: str, method: str, request: Request) -> JSONResponse:
        params = _parse(await request.body(), request.headers.get("content-type", ""))
        with self.lock:
            self.calls.append((method, params))
            self.times.append(time.monotonic())
            queued = self.failures.get(method)
            failure = queued.pop(0) if queued else None
        if failure is not None:
            return JSONResponse(failure, status_code=failure["error_code"])
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            if method == "getUpdates":
                result = await self._m_getUpdates(params)
            else:
                result = handler(params)
        except _ApiError as exc:
            return _error(exc.code, exc.description)
        return JSONResponse({"ok": True, "result": result})

    def _download(self, token: str, path: str) -> Response:
        with self.lock:
            self.calls.append(("download", {"path": path}))
            found = [content for stored, content in self.files.values() if stored == path]
        if not found or path in self.expired:
            return _error(404, "Not Found")
        return Response(found[0], media_type="application/octet-stream")

    async def _control_send(self, request: Request) -> JSONResponse:
        body = await request.json()
        message_id = self.send_text(str(body["text"]), user_id=int(body.get("user_id", 1001)))
        return JSONResponse({"message_id": message_id})

    def _control_chat(self, chat: int) -> JSONResponse:
        return JSONResponse([{"message_id": m.message_id, "text": m.text} for m in self.chat(chat)])

    # --- what tests do -------------------------------------------------------------------

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.updates.append({"update_id": next(self.update_ids), kind: payload})

    def send_text(
        self,
        text: str,
        user_id: int = 1001,
        chat_id: int | None = None,
        language: str = "en",
        chat_type: str = "private",
        **extra: Any,
    ) -> int:
        """The user writes `text`; returns the new message's id."""
        chat = chat_id if chat_id is not None else user_id
        message_id = next(self.message_ids)
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": chat_type, **({"title": "Group"} if chat_type != "private" else {})},
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language},
            "text": text,
            **extra,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        self.push("message", message)
        return message_id

    def send_voice(
        self,
        audio: bytes,
        duration: int,
        user_id: int = 1001,
        kind: str = "voice",
        language: str = "en",
        size: int | None = None,
        expired: bool = False,
        **extra: Any,
    ) -> int:
        """The user sends a voice note (`kind`: voice, audio or video_note); returns its message id.

        `size` is what Telegram says of the file (a file over 20 MB cannot be fetched by bots);
        `expired`: its download fails, as when Telegram's link to it has expired."""
        message_id = next(self.message_ids)
        file_id = f"file-{message_id}"
        with self.lock:
            self.files[file_id] = (f"voice/{file_id}.oga", audio)
            if expired:
                self.expired.add(f"voice/{file_id}.oga")
        media: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "duration": duration,
            "file_size": size if size is not None else len(audio),
        }
        if kind == "video_note":
            media["length"] = 240
        else:
            media["mime_type"] = "audio/ogg"
        self._private(message_id, user_id, language, {kind: media, **extra})
        return message_id

    def send_document(
        self,
        data: bytes,
        name: str,
        caption: str | None = None,
        user_id: int = 1001,
        language: str = "en",
        mime_type: str = "application/octet-stream",
        size: int | None = None,
    ) -> int:
        """The user sends a file (`caption` under it); returns its message id. `size` is what
        Telegram says of the file (over 20 MB, bots cannot fetch it)."""
        message_id = next(self.message_ids)
        file_id = f"file-{message_id}"
        with self.lock:
            self.files[file_id] = (f"documents/{file_id}", data)
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": name,
            "mime_type": mime_type,
            "file_size": size if size is not None else len(data),
        }
        self._private(message_id, user_id, language, {"document": document}, caption)
        return message_id

    def send_photo(
        self, data: bytes, caption: str | None = None, user_id: int = 1001, language: str = "en"
    ) -> int:
        """The user sends a photo (Telegram offers it in sizes; the largest is this one)."""
        message_id = next(self.message_ids)
        sizes = []
        for n, (width, size_data) in enumerate(((90, data[:64]), (1280, data))):
            file_id = f"photo-{message_id}-{n}"
            with self.lock:
                self.files[file_id] = (f"photos/{file_id}.jpg", size_data)
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}",
                    "width": width,
                    "height": width,
                    "file_size": len(size_data),
                }
            )
        self._private(message_id, user_id, language, {"photo": sizes}, caption)
        return message_id

    def _private(
        self,
        message_id: int,
        user_id: int,
        language: str,
        content: dict[str, Any],
        caption: str | None = None,
    ) -> None:
        """A message from `user_id` in their private chat with the bot, carrying `content`."""
        self.push(
            "message",
            {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language},
                **content,
                **({"caption": caption} if caption else {}),
            },
        )

    def press(self, data: str, message: ChatMessage, user_id: int = 1001, language: str = "en") -> None:
        self.push(
            "callback_query",
            {
                "id": str(next(self.update_ids)),
                "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language},
                "chat_instance": "ci",
                "data": data,
                "message": {
                    "message_id": message.message_id,
                    "date": int(time.time()),
                    "chat": {"id": message.chat, "type": "private"},
                    "from": BOT_USER,
                    "text": message.text,
                },
            },
        )

    def fail_next(self, method: str, code: int = 429, retry_after: int = 1, times: int = 1) -> None:
        error: dict[str, Any] = {"ok": False, "error_code": code}
        if code == 429:
            error |= {
                "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after},
            }
        else:
            error["description"] = "Bad Request: something is wrong"
        with self.lock:
            self.failures.setdefault(method, []).extend([error] * times)

    def chat(self, chat: int) -> list[ChatMessage]:
        with self.lock:
            return [m for (c, _), m in sorted(self.messages.items()) if c == chat]

    def called(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [params for name, params in self.calls if name == method]

    def last_with(self, chat: int, fragment: str, timeout: float = 30) -> ChatMessage:
        """The newest message in `chat` containing `fragment`, waiting up to `timeout` for one."""

        def found() -> ChatMessage | None:
            matches = [m for m in self.chat(chat) if fragment in m.text]
            return matches[-1] if matches else None

        message: ChatMessage = self.wait_for(found, timeout)
        return message

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(
            f"condition not met within {timeout}s; calls: {[c for c, _ in self.calls][-30:]}"
        )

    # --- Bot API methods -----------------------------------------------------------------

    async def _m_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset", 0))
        deadline = time.monotonic() + min(float(params.get("timeout", 0)), 1.0)
        while True:
            with self.lock:
                ready = [u for u in self.updates if u["update_id"] >= offset]
            if ready or self._stopping or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.02)

    def _m_getMe(self, _params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _m_deleteWebhook(self, _params: dict[str, Any]) -> bool:
        return True

    def _m_setMyCommands(self, _params: dict[str, Any]) -> bool:
        return True

    def _m_sendChatAction(self, _params: dict[str, Any]) -> bool:
        return True

    def _m_answerCallbackQuery(self, _params: dict[str, Any]) -> bool:
        return True

    def _m_sendMessageDraft(self, params: dict[str, Any]) -> bool:
        if not self.drafts_supported:
            raise _ApiError(400, "Bad Request: method is not available for this chat")
        text = str(params.get("text", ""))
        _check_text(text, params.get("entities"))
        with self.lock:
            self.drafts.setdefault((int(params["chat_id"]), int(params["draft_id"])), []).append(text)
        return True

    def _m_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params["file_id"])
        with self.lock:
            stored = self.files.get(file_id)
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if len(stored[1]) > 20 * 1024 * 1024:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(stored[1]),
            "file_path": stored[0],
        }

    def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params["text"])
        entities = params.get("entities") or []
        _check_text(text, entities)
        return self._store(params, text, entities)

    def _m_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        document = params.get("document")
        if isinstance(document, str) and document.startswith("attach://"):
            document = params.get(document.removeprefix("attach://"))  # the file in its own form field
        if not isinstance(document, tuple):
            raise _ApiError(400, "Bad Request: there is no document in the request")
        caption = str(params.get("caption", ""))
        if _utf16(caption) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return self._store(params, caption, [], document)

    def _store(
        self,
        params: dict[str, Any],
        text: str,
        entities: list[dict[str, Any]],
        document: tuple[str, bytes] | None = None,
    ) -> dict[str, Any]:
        chat = int(params["chat_id"])
        reply = params.get("reply_parameters") or {}
        thread = params.get("message_thread_id")
        message = ChatMessage(
            chat,
            next(self.message_ids),
            text,
            entities,
            params.get("reply_markup"),
            reply_to=reply.get("message_id"),
            thread=int(thread) if thread is not None else None,
            document=document,
        )
        with self.lock:
            self.messages[(chat, message.message_id)] = message
        return self._as_message(message)

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params["text"])
        entities = params.get("entities") or []
        _check_text(text, entities)
        key = (int(params["chat_id"]), int(params["message_id"]))
        with self.lock:
            message = self.messages.get(key)
            if message is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            markup = params.get("reply_markup")
            if message.text == text and message.entities == entities and message.reply_markup == markup:
                raise _ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message",
                )
            message.text, message.entities, message.reply_markup = text, entities, markup
            message.edits += 1
        return self._as_message(message)

    def _as_message(self, message: ChatMessage) -> dict[str, Any]:
        return {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": {"id": message.chat, "type": "private"},
            "from": BOT_USER,
            "text": message.text,
        }


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        self.code = code
        self.description = description


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=code)


def _check_text(text: str, entities: list[dict[str, Any]] | None) -> None:
    if _utf16(text) > LIMIT:
        raise _ApiError(400, "Bad Request: message is too long")
    size = _utf16(text)
    for entity in entities or []:
        if entity["offset"] < 0 or entity["length"] <= 0 or entity["offset"] + entity["length"] > size:
            raise _ApiError(400, "Bad Request: can't parse entities: entity is out of the text")


def _parse(body: bytes, content_type: str) -> dict[str, Any]:
    if content_type.startswith("multipart/form-data"):
        return _parse_multipart(body, content_type)
    if "json" in content_type:
        parsed: dict[str, Any] = json.loads(body or b"{}")
        return parsed
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        params[key] = json.loads(value) if value[:1] in "[{" else value
    return params


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """A file upload (sendDocument): fields as with a form, files as (name, bytes)."""
    envelope = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    params: dict[str, Any] = {}
    for part in BytesParser(policy=email.policy.HTTP).parsebytes(envelope).iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        if filename is not None:
            params[name] = (filename, payload)
        else:
            value = payload.decode()
            params[name] = json.loads(value) if value[:1] in "[{" else value
    return params


def serve(host: str, port: int) -> None:
    """Run the fake with its control routes until killed (`python -m fakes.telegram HOST PORT`)."""
    fake = FakeTelegram(host, port)
    fake.start(control=True)
    assert fake._thread is not None
    fake._thread.join()


if __name__ == "__main__":
    import sys

    serve(sys.argv[1], int(sys.argv[2]))
