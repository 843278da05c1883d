"""The web chat page. The page itself holds no data; what it shows needs a personal sign-in.

Security headers (no framing, no foreign scripts) come with every response: api/headers.py.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
def chat_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
