"""The intake baseline: a bare FastAPI endpoint that validates a small JSON body and does nothing else."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    user_id: str
    text: str


@app.post("/bare", status_code=202)
def bare(body: Body) -> dict[str, str]:
    return {"task_id": "0" * 32, "status": "queued"}
