"""How one answer picks its tokens."""

from __future__ import annotations

from dataclasses import dataclass

from shared.tools import ToolSpec


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    seed: int | None = None
    # OpenAI's penalties on tokens already in the recent text: once each (presence), per use (frequency).
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # A /v1 request's `response_format` as JSON text (json_object, json_schema): the answer is held to it.
    response_format: str | None = None
    # Stop sequences (a /v1 request's): the answer ends before the first one it writes. The worker
    # cuts the text itself; a remote server is told too, so that it stops writing.
    stop: tuple[str, ...] = ()
    # The tools the answer may call (a /v1 request's): its calls are held to their schemas.
    tools: ToolSpec | None = None

    @property
    def penalised(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty)
