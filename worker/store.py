"""The worker's side of the task table: claiming in conversation order, the answer as it grows,
the final state. Every write is one short transaction, followed by a change notice.

The statements are built once: on SQLite, building and caching a statement costs more than
running it. Writes go to the tables directly: the ORM's bookkeeping buys nothing here.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from shared.config import ModelSettings
from shared.db import Database
from shared.jobs import Growth, Notice
from shared.models import FinishReason, Message, Role, Task, TaskStatus, message_table, task_table, utcnow
from shared.personas import system_prompt_for
from shared.schemas import Source
from shared.tools import ToolCall, ToolSpec, dump_calls
from worker.sampling import Sampling

log = logging.getLogger(__name__)

_HISTORY_PAIRS_LOADED = 200
_request, _reply = message_table.alias("request"), message_table.alias("reply")
_HISTORY = (
    select(_request.c.content, _reply.c.content)
    .select_from(Task)
    .join(_request, _request.c.id == Task.request_message_id)
    .join(_reply, _reply.c.id == Task.reply_message_id)
    .where(
        Task.conversation_id == bindparam("conversation_id"),
        Task.request_message_id < bindparam("before"),
        Task.superseded.is_(False),
    )
    .order_by(Task.request_message_id.desc())
    .limit(_HISTORY_PAIRS_LOADED)
)
_MESSAGE_TEXT = select(Message.content).where(Message.id == bindparam("message_id"))
_HEAD = (
    select(Task)
    .where(
        Task.conversation_id == bindparam("conversation_id"),
        Task.status.in_([TaskStatus.QUEUED, TaskStatus.STARTED]),
    )
    .order_by(Task.request_message_id)
    .limit(1)
)
_CLAIM = (
    update(task_table)
    .where(task_table.c.id == bindparam("task_id"), task_table.c.status == TaskStatus.QUEUED)
    .values(
        status=TaskStatus.STARTED,
        started_at=bindparam("now"),
        heartbeat_at=bindparam("now"),
        worker_name=bindparam("worker"),
    )
)
_PUBLISH = (
    update(task_table)
    .where(task_table.c.id == bindparam("task_id"), task_table.c.status == TaskStatus.STARTED)
    .values(partial_text=bindparam("text"), heartbeat_at=bindparam("now"))
)
_STANDING = select(task_table.c.status, task_table.c.cancel_requested, task_table.c.conversation_id).where(
    task_table.c.id == bindparam("task_id")
)
_ADD_REPLY = insert(message_table).values(role=Role.ASSISTANT).returning(message_table.c.id)
# The final state: status, finished_at, reply_message_id and the usage figures come as parameters.
_FINISH = update(task_table).where(task_table.c.id == bindparam("task_id")).values(partial_text=None)


class Step(enum.Enum):
    DONE = "nothing (left) to do"
    WAIT = "an earlier message is being answered elsewhere"
    AGAIN = "look again"


class LoadFailed(Exception):
    """The claimed task's conversation could not be read; the task is already marked failed."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id}: loading the conversation failed")
        self.task_id = task_id


@dataclass(frozen=True)
class AnswerContext:
    """What the model needs to answer one task: instructions, history, message and limits."""

    task_id: str
    conversation_id: int
    system_prompt: str
    message: str
    history: list[tuple[str, str]]
    max_tokens: int
    sampling: Sampling
    # A voice note: `message` is a placeholder until the note is transcribed (worker.voice).
    voice: bool = False
    # A /v1 conversation with tool calls, whole as the request brought it (then `history` is empty).
    transcript: list[dict[str, Any]] | None = None
    # Whose task it is, and the documents a /v1 request named (else the conversation's are used).
    user_id: int = 0
    documents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Standing:
    """Where a task being written stands, as learned at each write."""

    lost: bool  # gone (the user asked to be forgotten) or no longer ours (failed by recovery)
    cancel: bool


class TaskStore:
    """The task table as one worker process reads and writes it."""

    def __init__(
        self,
        db: Database,
        model_settings: ModelSettings,
        worker_name: str,
        announce: Callable[[Notice], None],
        generation_failed: str,
    ) -> None:
        """`announce(task_id)` is called after each change is committed (it wakes the followers)."""
        self.db = db
        self.model_settings = model_settings
        self.worker_name = worker_name
        self._announce = announce
        self._generation_failed = generation_failed

    def claim_next(self, task_id: str) -> AnswerContext | Step:
        """Claim the oldest unanswered task of `task_id`'s conversation and load what answering needs.

        One write transaction: nothing can slip in between the order check, the claim and the
        reading of the history, and a claim costs the database one round of locking, not three.
        """
        with self.db.writing() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != TaskStatus.QUEUED:
                log.info("task=%s nothing to do (%s)", task_id, task.status if task else "gone")
                return Step.DONE
            head = session.scalar(_HEAD, {"conversation_id": task.conversation_id})
            assert head is not None  # the task itself is queued
            if head.status != TaskStatus.QUEUED:
                return Step.WAIT
            if head.id != task_id:
                log.info("task=%s answering earlier task=%s of its conversation first", task_id, head.id)
            claimed = session.execute(
                _CLAIM, {"task_id": head.id, "now": utcnow(), "worker": self.worker_name}
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return Step.AGAIN  # taken meanwhile (only where writers do not lock each other out)
            try:
                context: AnswerContext | None = self._load_context(session, head)
            except Exception:
                log.exception("task=%s failed while loading its conversation", head.id)
                context = None
        self._announce(head.id)
        if context is None:
            self.fail(head.id, self._generation_failed, FinishReason.ERROR)
            raise LoadFailed(head.id)
        return context

    def _load_context(self, session: Session, task: Task) -> AnswerContext:
        """What the model needs for `task`: instructions, history, message and limits."""
        settings = self.model_settings
        system_prompt = system_prompt_for(task.persona, settings.system_prompt, task.system_prompt)
        message = session.scalar(_MESSAGE_TEXT, {"message_id": task.request_message_id})
        rows = (
            session.execute(
                _HISTORY, {"conversation_id": task.conversation_id, "before": task.request_message_id}
            ).all()
            if task.transcript is None
            else []
        )
        return AnswerContext(
            task_id=task.id,
            conversation_id=task.conversation_id,
            system_prompt=system_prompt,
            message=message or "",
            history=[(str(user), str(answer)) for user, answer in reversed(rows)],
            max_tokens=task.max_tokens or settings.max_tokens,
            sampling=Sampling(
                temperature=task.temperature if task.temperature is not None else settings.temperature,
                top_p=task.top_p if task.top_p is not None else settings.top_p,
                seed=task.seed if task.seed is not None else settings.seed,
                presence_penalty=task.presence_penalty or 0.0,
                frequency_penalty=task.frequency_penalty or 0.0,
                response_format=task.response_format,
                stop=tuple(json.loads(task.stop)) if task.stop else (),
                tools=ToolSpec.model_validate_json(task.tools) if task.tools else None,
            ),
            voice=task.voice,
            transcript=json.loads(task.transcript) if task.transcript else None,
            user_id=task.user_id,
            documents=tuple(json.loads(task.document_ids)) if task.document_ids else (),
        )

    def grow(self, task_id: str, at: int, text: str) -> None:
        """Tell the followers that the answer so far grew by `text` at character `at` (not saved:
        `publish` saves the whole text less often, for whoever missed a piece)."""
        self._announce(Growth(task_id=task_id, at=at, text=text))

    def publish(self, task_id: str, text: str) -> Standing:
        """Save the answer so far, and learn whether a cancel was asked for meanwhile."""
        with self.db.writing() as session:
            session.execute(_PUBLISH, {"task_id": task_id, "text": text, "now": utcnow()})
            row = session.execute(_STANDING, {"task_id": task_id}).one_or_none()
        self._announce(task_id)
        return Standing(
            lost=row is None or row.status != TaskStatus.STARTED, cancel=bool(row and row.cancel_requested)
        )

    def standing(self, task_id: str) -> Standing:
        """Whether the task was canceled or taken away meanwhile (asked while nothing is published)."""
        with self.db.reading() as session:
            row = session.execute(_STANDING, {"task_id": task_id}).one_or_none()
        return Standing(
            lost=row is None or row.status != TaskStatus.STARTED, cancel=bool(row and row.cancel_requested)
        )

    def note_sources(self, task_id: str, sources: list[Source]) -> None:
        """Record where the passages put before the model came from (shown while it answers)."""
        payload = json.dumps([source.model_dump() for source in sources], ensure_ascii=False)
        with self.db.writing() as session:
            session.execute(update(Task).where(Task.id == task_id).values(sources=payload))
        self._announce(task_id)

    def complete(
        self,
        task_id: str,
        outcome: TaskStatus,
        text: str,
        usage: dict[str, object],
        calls: list[ToolCall] | None = None,
    ) -> None:
        with self.db.writing() as session:
            row = session.execute(_STANDING, {"task_id": task_id}).one_or_none()
            if row is None or row.status != TaskStatus.STARTED:
                log.warning(
                    "task=%s was %s meanwhile; answer dropped", task_id, row.status if row else "deleted"
                )
                return
            reply_id = None
            if outcome == TaskStatus.FINISHED or text:
                # A canceled answer keeps what the user already saw; it is part of the conversation.
                reply_id = session.scalar(
                    _ADD_REPLY, {"conversation_id": row.conversation_id, "content": text}
                )
            session.execute(
                _FINISH,
                {
                    "task_id": task_id,
                    "status": outcome,
                    "finished_at": utcnow(),
                    "reply_message_id": reply_id,
                    "tool_calls": dump_calls(calls) if calls else None,
                    **usage,
                },
            )
        self._announce(task_id)

    def fail(self, task_id: str, error: str, reason: FinishReason | None = None, **usage: object) -> None:
        """Mark the task failed with a message for its user; `reason` names the kind for clients."""
        if reason is not None:
            usage["finish_reason"] = reason
        with self.db.writing() as session:
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.STARTED)
                .values(status=TaskStatus.FAILED, error=error, finished_at=utcnow(), **usage)
            )
        self._announce(task_id)


class Heartbeat:
    """Tells the database this worker is alive while it answers, even during a long prompt read."""

    def __init__(self, db: Database, task_id: str, interval: float) -> None:
        self._db = db
        self._task_id = task_id
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{task_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                with self._db.writing() as session:
                    session.execute(
                        update(Task)
                        .where(Task.id == self._task_id, Task.status == TaskStatus.STARTED)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:
                log.exception("task=%s heartbeat failed", self._task_id)
