"""Answering one task: conversation order, claiming, streaming into SQLite, cancel and failure."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rq.timeouts import JobTimeoutException
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from shared.config import ModelSettings, WorkerSettings
from shared.db import Database
from shared.models import (
    FinishReason,
    Message,
    Role,
    Task,
    TaskStatus,
    message_table,
    task_table,
    utcnow,
)
from shared.personas import system_prompt_for
from shared.recovery import WORKER_LOST
from worker.errors import ModelFailure
from worker.llm import ChatModel, Sampling
from worker.prompt import PromptTooLong, build_prompt

log = logging.getLogger(__name__)

GENERATION_FAILED = "Something went wrong while writing the answer. Please try again."
TIMED_OUT = "The answer took too long and was stopped. Please try a shorter question."
_HISTORY_PAIRS_LOADED = 200
_WAIT_POLL_SECONDS = 0.2


# The statements of every answer, built once: on SQLite, building and caching a statement costs
# more than running it. Writes go to the tables directly: the ORM's bookkeeping buys nothing here.
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


class ReplyFailed(Exception):
    """Raised to RQ when a task failed; says which task and never carries user text."""


@dataclass
class _Progress:
    """What the generation loop and the writer share while one answer is being written."""

    text: str = ""
    tokens: int = 0
    cancel: bool = False
    deadline: float = 0.0
    timed_out: bool = False
    lost: bool = False
    first_token_at: float | None = None

    def finish_reason(self, max_tokens: int) -> FinishReason:
        if self.timed_out:
            return FinishReason.TIMEOUT
        if self.cancel:
            return FinishReason.CANCEL
        return FinishReason.LENGTH if self.tokens >= max_tokens else FinishReason.STOP

    def should_stop(self) -> bool:
        # Called by the model once per new token: the place where cancel and time limits act.
        self.tokens += 1
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancel or self.timed_out or self.lost


class _Step(enum.Enum):
    DONE = "nothing (left) to do"
    WAIT = "an earlier message is being answered elsewhere"
    AGAIN = "look again"


@dataclass(frozen=True)
class _Context:
    task_id: str
    conversation_id: int
    system_prompt: str
    message: str
    history: list[tuple[str, str]]
    max_tokens: int
    sampling: Sampling


class ReplyService:
    """Everything a worker process needs to answer tasks; built once, with the model loaded."""

    def __init__(
        self,
        db: Database,
        model: ChatModel,
        model_settings: ModelSettings,
        worker_settings: WorkerSettings,
        worker_name: str,
        clock: Callable[[], float] = time.monotonic,
        announce: Callable[[str], None] = lambda _task_id: None,
    ) -> None:
        """`announce(task_id)` is called after each change is committed (it wakes the followers)."""
        self.db = db
        self.model = model
        self.model_settings = model_settings
        self.worker_settings = worker_settings
        self.worker_name = worker_name
        self._clock = clock
        self._announce = announce

    # --- order within a conversation -------------------------------------------------------

    def run(self, task_id: str) -> None:
        """Answer `task_id` once every earlier message of its conversation has been answered.

        An earlier task that is still queued is answered here first (whoever claims a task answers
        it); one that another worker is answering is waited for. A task that is no longer queued
        was handled elsewhere, so a repeated job does nothing.
        """
        while True:
            step = self._claim_next(task_id)
            if step is _Step.DONE:
                return
            if step is _Step.WAIT:
                # Another worker is answering an earlier message of this conversation: wait for it.
                # (Should that worker die, the recovery thread fails its task and the wait ends.)
                time.sleep(_WAIT_POLL_SECONDS)
                continue
            if step is _Step.AGAIN:
                continue
            self._answer(step)
            if step.task_id == task_id:
                return

    def _claim_next(self, task_id: str) -> _Context | _Step:
        """Claim the oldest unanswered task of `task_id`'s conversation and load what answering needs.

        One write transaction: nothing can slip in between the order check, the claim and the
        reading of the history, and a claim costs the database one round of locking, not three.
        """
        with self.db.writing() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != TaskStatus.QUEUED:
                log.info("task=%s nothing to do (%s)", task_id, task.status if task else "gone")
                return _Step.DONE
            head = session.scalar(_HEAD, {"conversation_id": task.conversation_id})
            assert head is not None  # the task itself is queued
            if head.status != TaskStatus.QUEUED:
                return _Step.WAIT
            if head.id != task_id:
                log.info("task=%s answering earlier task=%s of its conversation first", task_id, head.id)
            claimed = session.execute(
                _CLAIM, {"task_id": head.id, "now": utcnow(), "worker": self.worker_name}
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return _Step.AGAIN  # taken meanwhile (only where writers do not lock each other out)
            try:
                context: _Context | None = self._load_context(session, head)
            except Exception:
                log.exception("task=%s failed while loading its conversation", head.id)
                context = None
        self._announce(head.id)
        if context is None:
            self._fail(head.id, GENERATION_FAILED, "error")
            raise ReplyFailed(f"task {head.id}: loading the conversation failed")
        return context

    # --- one answer --------------------------------------------------------------------------

    def _load_context(self, session: Session, task: Task) -> _Context:
        """What the model needs for `task`: instructions, history, message and limits."""
        settings = self.model_settings
        system_prompt = system_prompt_for(task.persona, settings.system_prompt, task.system_prompt)
        message = session.scalar(_MESSAGE_TEXT, {"message_id": task.request_message_id})
        rows = session.execute(
            _HISTORY, {"conversation_id": task.conversation_id, "before": task.request_message_id}
        ).all()
        return _Context(
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
            ),
        )

    def _answer(self, context: _Context) -> None:
        task_id = context.task_id
        started = self._clock()
        try:
            prompt = build_prompt(
                self.model,
                context.system_prompt,
                context.history,
                context.message,
                context.max_tokens,
                self.model_settings.min_reply_tokens,
            )
        except PromptTooLong as exc:
            log.info("task=%s refused: %s", task_id, exc)
            self._fail(task_id, exc.user_message, exc.failure_kind, prompt_tokens=exc.prompt_tokens)
            return
        except Exception as exc:
            log.exception("task=%s failed while preparing the prompt", task_id)
            self._fail(task_id, GENERATION_FAILED, "error")
            raise ReplyFailed(f"task {task_id}: preparing the prompt failed") from exc

        log.info(
            "task=%s generating: %d prompt tokens, %d history messages, up to %d new tokens",
            task_id,
            prompt.rendered.size,
            prompt.history_messages,
            prompt.max_tokens,
        )
        progress = _Progress(deadline=time.monotonic() + self.worker_settings.generation_timeout_seconds)
        heartbeat = _Heartbeat(self.db, task_id, self.worker_settings.heartbeat_interval_seconds)
        heartbeat.start()
        gen_start = self._clock()
        try:
            last_flush = float("-inf")  # the first words are shown at once, then every interval
            pieces = self.model.generate(
                prompt.rendered,
                prompt.max_tokens,
                progress.should_stop,
                context.sampling,
                # The model keeps each conversation's computed context for its next turn.
                cache_key=f"conversation-{context.conversation_id}",
            )
            for piece in pieces:
                if progress.first_token_at is None:
                    progress.first_token_at = self._clock()
                progress.text += piece
                if self._clock() - last_flush >= self.worker_settings.partial_interval_seconds:
                    self._flush(task_id, progress)
                    last_flush = self._clock()
        except Exception as exc:
            # Also RQ's job timeout, which arrives as an exception between two tokens.
            timed_out = isinstance(exc, JobTimeoutException)
            log.exception("task=%s generation failed", task_id)
            # A model that can say what went wrong in a user's words (a remote server) is let to.
            if isinstance(exc, ModelFailure):
                message, kind = exc.user_message, exc.failure_kind
            else:
                message = TIMED_OUT if timed_out else GENERATION_FAILED
                kind = FinishReason.TIMEOUT if timed_out else FinishReason.ERROR
            self._fail(task_id, message, kind, prompt_tokens=prompt.rendered.size)
            # `from None`: RQ stores the traceback in Redis, and the cause might quote user text.
            raise ReplyFailed(
                f"task {task_id}: {'timed out' if timed_out else 'generation failed'}"
            ) from None
        except BaseException:
            # The worker is being shut down the hard way: say so, and let the exit go on.
            self._fail(task_id, WORKER_LOST, FinishReason.WORKER_LOST)
            raise
        finally:
            heartbeat.stop()

        elapsed = self._clock() - gen_start
        usage = {
            "model_name": self.model.name[:128],  # the column's size; a remote name could be longer
            "prompt_tokens": prompt.rendered.size,
            "completion_tokens": progress.tokens,
            "generation_seconds": round(elapsed, 4),
            "first_token_seconds": round(progress.first_token_at - gen_start, 4)
            if progress.first_token_at is not None
            else None,
            "finish_reason": progress.finish_reason(prompt.max_tokens),
        }
        if progress.timed_out:
            usage.pop("finish_reason")
            self._fail(task_id, TIMED_OUT, FinishReason.TIMEOUT, **usage)
            raise ReplyFailed(f"task {task_id}: timed out")
        outcome = TaskStatus.CANCELED if progress.cancel else TaskStatus.FINISHED
        self._complete(task_id, outcome, progress.text, usage)
        log.info(
            "task=%s %s: %d tokens in %.2fs (%.1f tok/s), total %.2fs",
            task_id,
            outcome,
            progress.tokens,
            elapsed,
            progress.tokens / elapsed if elapsed > 0 else 0.0,
            self._clock() - started,
        )

    def _flush(self, task_id: str, progress: _Progress) -> None:
        """Publish the answer so far, and learn whether a cancel was asked for meanwhile."""
        with self.db.writing() as session:
            session.execute(_PUBLISH, {"task_id": task_id, "text": progress.text, "now": utcnow()})
            row = session.execute(_STANDING, {"task_id": task_id}).one_or_none()
        self._announce(task_id)
        # Gone (the user asked to be forgotten) or no longer ours (failed by recovery): stop writing.
        progress.lost = row is None or row.status != TaskStatus.STARTED
        progress.cancel = progress.cancel or bool(row and row.cancel_requested)

    def _complete(self, task_id: str, outcome: TaskStatus, text: str, usage: dict[str, object]) -> None:
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
                    **usage,
                },
            )
        self._announce(task_id)

    def _fail(self, task_id: str, error: str, reason: str | None = None, **usage: object) -> None:
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


class _Heartbeat:
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
