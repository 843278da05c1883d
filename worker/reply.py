"""Answering one task: conversation order, claiming, streaming into SQLite, cancel and failure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update

from shared.config import ModelSettings, WorkerSettings
from shared.db import Database
from shared.models import Message, Role, Task, TaskStatus, utcnow
from shared.personas import system_prompt_for
from shared.recovery import WORKER_LOST
from worker.llm import ChatModel, Sampling
from worker.prompt import PromptTooLong, build_prompt

log = logging.getLogger(__name__)

GENERATION_FAILED = "Something went wrong while writing the answer. Please try again."
TIMED_OUT = "The answer took too long and was stopped. Please try a shorter question."
_HISTORY_PAIRS_LOADED = 200
_WAIT_POLL_SECONDS = 0.2


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

    def finish_reason(self, max_tokens: int) -> str:
        if self.timed_out:
            return "timeout"
        if self.cancel:
            return "cancel"
        return "length" if self.tokens >= max_tokens else "stop"

    def should_stop(self) -> bool:
        # Called by the model once per new token: the place where cancel and time limits act.
        self.tokens += 1
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancel or self.timed_out or self.lost


@dataclass(frozen=True)
class _Context:
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
    ) -> None:
        self.db = db
        self.model = model
        self.model_settings = model_settings
        self.worker_settings = worker_settings
        self.worker_name = worker_name
        self._clock = clock

    # --- order within a conversation -------------------------------------------------------

    def run(self, task_id: str) -> None:
        """Answer `task_id` once every earlier message of its conversation has been answered.

        An earlier task that is still queued is answered here first (whoever claims a task answers
        it); one that another worker is answering is waited for. A task that is no longer queued
        was handled elsewhere, so a repeated job does nothing.
        """
        while True:
            with self.db.reading() as session:
                task = session.get(Task, task_id)
                if task is None or task.status != TaskStatus.QUEUED:
                    log.info("task=%s nothing to do (%s)", task_id, task.status if task else "gone")
                    return
                head = session.scalar(
                    select(Task)
                    .where(
                        Task.conversation_id == task.conversation_id,
                        Task.status.in_([TaskStatus.QUEUED, TaskStatus.STARTED]),
                    )
                    .order_by(Task.request_message_id)
                    .limit(1)
                )
            assert head is not None  # the task itself is queued
            if head.status == TaskStatus.QUEUED:
                if head.id != task_id:
                    log.info("task=%s answering earlier task=%s of its conversation first", task_id, head.id)
                if self._claim(head.id):
                    self._answer(head.id)
                if head.id == task_id:
                    return
                continue
            # Another worker is answering an earlier message of this conversation: wait for it.
            # (Should that worker die, the recovery thread fails its task and the wait ends.)
            time.sleep(_WAIT_POLL_SECONDS)

    def _claim(self, task_id: str) -> bool:
        now = utcnow()
        with self.db.writing() as session:
            result = session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.QUEUED)
                .values(
                    status=TaskStatus.STARTED,
                    started_at=now,
                    heartbeat_at=now,
                    worker_name=self.worker_name,
                )
            )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    # --- one answer --------------------------------------------------------------------------

    def _load_context(self, task_id: str) -> _Context:
        """What the model needs for this task: instructions, history, message and limits."""
        settings = self.model_settings
        with self.db.reading() as session:
            task = session.get(Task, task_id)
            assert task is not None
            if task.system_prompt is not None:
                system_prompt = task.system_prompt
            else:
                system_prompt = system_prompt_for(task.persona, settings.system_prompt)
            message = session.scalar(select(Message.content).where(Message.id == task.request_message_id))
            request, reply = Message.__table__.alias("request"), Message.__table__.alias("reply")
            rows = session.execute(
                select(request.c.content, reply.c.content)
                .select_from(Task)
                .join(request, request.c.id == Task.request_message_id)
                .join(reply, reply.c.id == Task.reply_message_id)
                .where(
                    Task.conversation_id == task.conversation_id,
                    Task.request_message_id < task.request_message_id,
                    Task.superseded.is_(False),
                )
                .order_by(Task.request_message_id.desc())
                .limit(_HISTORY_PAIRS_LOADED)
            ).all()
            return _Context(
                system_prompt=system_prompt,
                message=message or "",
                history=[(str(user), str(answer)) for user, answer in reversed(rows)],
                max_tokens=task.max_tokens or settings.max_tokens,
                sampling=Sampling(
                    temperature=task.temperature if task.temperature is not None else settings.temperature,
                    top_p=task.top_p if task.top_p is not None else settings.top_p,
                ),
            )

    def _answer(self, task_id: str) -> None:
        started = self._clock()
        try:
            context = self._load_context(task_id)
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
            self._fail(task_id, exc.user_message, "context_length", prompt_tokens=exc.prompt_tokens)
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
                prompt.rendered, prompt.max_tokens, progress.should_stop, context.sampling
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
            message = getattr(exc, "user_message", None) or (TIMED_OUT if timed_out else GENERATION_FAILED)
            kind = "timeout" if timed_out else getattr(exc, "failure_kind", "error")
            self._fail(task_id, message, kind, prompt_tokens=prompt.rendered.size)
            # `from None`: RQ stores the traceback in Redis, and the cause might quote user text.
            raise ReplyFailed(
                f"task {task_id}: {'timed out' if timed_out else 'generation failed'}"
            ) from None
        except BaseException:
            # The worker is being shut down the hard way: say so, and let the exit go on.
            self._fail(task_id, WORKER_LOST, "worker_lost")
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
            self._fail(task_id, TIMED_OUT, "timeout", **usage)
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
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.STARTED)
                .values(partial_text=progress.text, heartbeat_at=utcnow())
            )
            row = session.execute(
                select(Task.status, Task.cancel_requested).where(Task.id == task_id)
            ).one_or_none()
        # Gone (the user asked to be forgotten) or no longer ours (failed by recovery): stop writing.
        progress.lost = row is None or row.status != TaskStatus.STARTED
        progress.cancel = progress.cancel or bool(row and row.cancel_requested)

    def _complete(self, task_id: str, outcome: TaskStatus, text: str, usage: dict[str, object]) -> None:
        with self.db.writing() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != TaskStatus.STARTED:
                log.warning(
                    "task=%s was %s meanwhile; answer dropped", task_id, task.status if task else "deleted"
                )
                return
            if outcome == TaskStatus.FINISHED or text:
                # A canceled answer keeps what the user already saw; it is part of the conversation.
                reply = Message(conversation_id=task.conversation_id, role=Role.ASSISTANT, content=text)
                session.add(reply)
                session.flush()
                task.reply_message_id = reply.id
            task.status = outcome
            task.partial_text = None
            task.finished_at = utcnow()
            for name, value in usage.items():
                setattr(task, name, value)

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
