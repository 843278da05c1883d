"""A stand-in for the Hugging Face Hub on loopback: the `resolve` route that file downloads use,
and a repository's file list (what a whole-repository download asks for first).

Serves files under `/{owner}/{name}/resolve/{revision}/{filename}` with the headers the hub sends
(commit, ETag = the file's SHA-256, size) and byte ranges, so a client can resume. A test may cut
the next transfers short, or make the hub announce a hash the bytes do not have.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from stack.redis_server import free_port

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 1 << 16


@dataclass
class HubFile:
    data: bytes
    announced_sha256: str = ""

    def __post_init__(self) -> None:
        self.announced_sha256 = self.announced_sha256 or hashlib.sha256(self.data).hexdigest()


@dataclass
class FakeHub:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    cut_after: list[int] = field(default_factory=list)  # the next transfers stop after this many bytes
    ranges: list[int] = field(default_factory=list)  # where each GET started (0: from the beginning)
    requests: list[str] = field(default_factory=list)  # every request's method and path, in order
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo: str, filename: str, data: bytes, announced_sha256: str = "") -> None:
        self.files[(repo, filename)] = HubFile(data, announced_sha256)

    def add_file(self, repo: str, path: Path) -> None:
        self.add(repo, path.name, path.read_bytes())

    def start(self) -> FakeHub:
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            self._thread.join(timeout=0.05)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Response:
            self.requests.append(f"{request.method} {request.url.path}")
            response: Response = await call_next(request)
            return response

        @app.get("/api/models/{owner}/{name}/revision/{revision}")
        def repository(owner: str, name: str, revision: str) -> Response:
            repo = f"{owner}/{name}"
            names = [filename for (held, filename) in self.files if held == repo]
            if not names:
                return Response(status_code=404, headers={"X-Error-Code": "RepoNotFound"})
            siblings = [{"rfilename": filename} for filename in sorted(names)]
            return JSONResponse({"id": repo, "sha": COMMIT, "siblings": siblings, "private": False})

        @app.get("/api/models/{owner}/{name}/tree/{revision}")
        def tree(owner: str, name: str, revision: str) -> Response:
            repo = f"{owner}/{name}"
            listing = [
                {
                    "type": "file",
                    "path": filename,
                    "size": len(hub_file.data),
                    "oid": hashlib.sha1(hub_file.data).hexdigest(),
                    "lfs": {"oid": hub_file.announced_sha256, "size": len(hub_file.data), "pointerSize": 134},
                }
                for (held, filename), hub_file in sorted(self.files.items())
                if held == repo
            ]
            return JSONResponse(listing) if listing else Response(status_code=404)

        @app.api_route("/{owner}/{name}/resolve/{revision}/{filename:path}", methods=["GET", "HEAD"])
        def resolve(owner: str, name: str, revision: str, filename: str, request: Request) -> Response:
            hub_file = self.files.get((f"{owner}/{name}", filename))
            headers = {"X-Repo-Commit": COMMIT, "X-Error-Code": "EntryNotFound"}
            if hub_file is None:
                return Response(status_code=404, headers=headers)
            size = len(hub_file.data)
            headers = {
                "X-Repo-Commit": COMMIT,
                "ETag": f'"{hub_file.announced_sha256}"',
                "Accept-Ranges": "bytes",
                "Content-Length": str(size),
            }
            if request.method == "HEAD":
                return Response(headers=headers)
            start = _range_start(request.headers.get("range"))
            self.ranges.append(start)
            cut = self.cut_after.pop(0) if self.cut_after else None
            body = hub_file.data[start:]
            if start:
                headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
            headers["Content-Length"] = str(len(body))
            return StreamingResponse(
                _send(body, cut), status_code=206 if start else 200, headers=headers, media_type=None
            )

        return app


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes="):
        return 0
    return int(header.removeprefix("bytes=").split("-", 1)[0] or 0)


async def _send(body: bytes, cut: int | None) -> AsyncIterator[bytes]:
    """The body in chunks; with `cut`, the connection breaks after that many bytes."""
    limit = len(body) if cut is None else min(cut, len(body))
    for offset in range(0, limit, _CHUNK):
        yield body[offset : min(offset + _CHUNK, limit)]
    if cut is not None:
        raise ConnectionResetError("the transfer was cut short on purpose")
