"""RQ job functions. The gateway enqueues them by dotted path with a task id as the only argument."""

from __future__ import annotations

from worker.reply import ReplyService

_service: ReplyService | None = None


def install(service: ReplyService | None) -> None:
    """Make `service` (holding the loaded model) the one this process's jobs use."""
    global _service
    _service = service


def transcribe_voice(note_id: str) -> None:
    """Transcribe one voice note asked for on its own; the text goes to the database."""
    if _service is None:
        raise RuntimeError("this process has no model loaded; run jobs with `python -m worker`")
    _service.voice.transcribe_alone(note_id)


def read_document(document_id: str) -> None:
    """Read one document a person sent: its passages go to the database and its index."""
    if _service is None:
        raise RuntimeError("this process has no model loaded; run jobs with `python -m worker`")
    _service.documents.read(document_id)


def embed_texts(request_id: str) -> None:
    """Embed the texts of one /v1/embeddings request: the vectors go to the database."""
    if _service is None:
        raise RuntimeError("this process has no model loaded; run jobs with `python -m worker`")
    _service.embeddings.run(request_id)


def generate_reply(task_id: str) -> None:
    """Answer one task. Returns nothing: results go to the database, never into Redis."""
    if _service is None:
        raise RuntimeError("this process has no model loaded; run jobs with `python -m worker`")
    _service.run(task_id)
