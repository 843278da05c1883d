"""Reading documents in the worker: the file is read from the database in a process with limits
(worker.reading.sandbox), cut into passages and indexed; the file itself is dropped once read.
Progress (pages read) is written as it goes, so the person sees "page 12 of 40".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import select, update

from shared.config import DocumentSettings
from shared.db import Database
from shared.enums import DocumentFailure
from shared.models import Document, TaskStatus, utcnow
from shared.terms import query_terms
from worker import passages
from worker.embedder import Embedder
from worker.reading.chunks import passages as cut
from worker.reading.formats import Unreadable
from worker.reading.sandbox import read_document

log = logging.getLogger(__name__)

# Pages read are saved at most this often: a 300-page PDF is read in seconds.
_PROGRESS_SECONDS = 0.5
# A question with fewer terms than this is looked up together with the one before it.
_FEW_TERMS = 3


class DocumentWork:
    """What one worker process does with documents."""

    def __init__(
        self,
        db: Database,
        settings: DocumentSettings,
        worker_name: str,
        announce: Callable[[str], None] = lambda _id: None,
        embedder: Embedder | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.worker_name = worker_name
        self._announce = announce
        # None: passages are found by their words alone (DOCUMENT_EMBEDDER, shared.presets).
        self.embedder = embedder

    def read(self, document_id: str) -> None:
        """Read one queued document; its row says how it went (passages, or why there are none)."""
        with self.db.writing() as session:
            claimed = session.execute(
                update(Document)
                .where(Document.id == document_id, Document.status == TaskStatus.QUEUED)
                .values(status=TaskStatus.STARTED, worker_name=self.worker_name, started_at=utcnow())
            )
            row = session.execute(
                select(Document.content, Document.name).where(Document.id == document_id)
            ).one_or_none()
        if not getattr(claimed, "rowcount", 0) or row is None or row.content is None:
            log.info("document=%s nothing to do", document_id)
            return
        self._announce(document_id)
        began = time.monotonic()
        saved_at = 0.0

        def on_page(page: int, pages: int | None) -> None:
            nonlocal saved_at
            if time.monotonic() - saved_at < _PROGRESS_SECONDS:
                return
            saved_at = time.monotonic()
            with self.db.writing() as session:
                session.execute(
                    update(Document).where(Document.id == document_id).values(pages=pages, pages_read=page)
                )
            self._announce(document_id)

        try:
            found = read_document(row.content, row.name, self.settings, on_page)
            parts = list(cut(found.units))
            if not parts:
                raise Unreadable(
                    DocumentFailure.NO_TEXT,
                    "no text in it (a scan, or pictures of pages)" if found.pages else "no text in it",
                )
        except Unreadable as exc:
            self._fail(document_id, exc)
            return
        vectors = None
        if self.embedder is not None:
            embedding_began = time.monotonic()
            vectors = self.embedder.embed([passages.embedded_text(p) for p in parts], query=False)
            log.info(
                "document=%s %d passages embedded in %.2f s",
                document_id,
                len(parts),
                time.monotonic() - embedding_began,
            )
        with self.db.writing() as session:
            stored = passages.store(session, document_id, parts, vectors)
            session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(
                    status=TaskStatus.FINISHED,
                    kind=found.kind,
                    pages=found.pages,
                    pages_read=found.pages or 0,
                    passages=stored,
                    content=None,
                    finished_at=utcnow(),
                )
            )
        self._announce(document_id)
        log.info(
            "document=%s read: %s, %s pages, %d passages in %.2f s",
            document_id,
            found.kind,
            found.pages,
            stored,
            time.monotonic() - began,
        )

    def find(
        self,
        user_id: int,
        conversation_id: int,
        named: tuple[str, ...],
        question: str,
        previous: str | None = None,
        most: int = 5,
    ) -> list[passages.Found]:
        """The passages that best answer `question` of the person's `named` documents, or (none
        named) of the conversation's; nothing more is done for a conversation without any."""
        with self.db.reading() as session:
            documents = list(named) or list(
                session.scalars(
                    select(Document.id).where(
                        Document.conversation_id == conversation_id, Document.status == TaskStatus.FINISHED
                    )
                )
            )
            if not documents:
                return []
            if previous and len(query_terms(question)) < _FEW_TERMS:
                # A follow-up ("and how much is it?") is looked up with the question before it.
                question = f"{question}\n{previous}"
        # The question's vector is made outside the transaction: the embedder may be loading.
        vectors = self.embedder.embed([question], query=True) if self.embedder is not None else None
        with self.db.reading() as session:
            # Whichever way they were named, only the person's own are searched.
            return passages.search(
                session, user_id, documents, question, most, None if vectors is None else vectors[0]
            )

    def _fail(self, document_id: str, exc: Unreadable) -> None:
        log.info("document=%s not read (%s): %s", document_id, exc.failure, exc)
        with self.db.writing() as session:
            session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(
                    status=TaskStatus.FAILED,
                    error_code=exc.failure,
                    error=str(exc),
                    content=None,
                    finished_at=utcnow(),
                )
            )
        self._announce(document_id)
