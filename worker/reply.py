"""Answering one task: conversation order, the prompt, streaming the answer, cancel and failure.

What is read from and written to the database is `worker.store`'s; this module decides what
happens and maps each way an answer can end to what its user is told.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rq.timeouts import JobTimeoutException

from shared.config import DocumentSettings, ModelSettings, WorkerSettings
from shared.db import Database
from shared.jobs import Notice
from shared.models import FinishReason, TaskStatus
from shared.recovery import WORKER_LOST
from shared.tools import ToolCall
from worker import tool_calls
from worker.cancels import CancelNotices
from worker.documents import DocumentWork
from worker.embeddings import EmbeddingWork
from worker.errors import ModelFailure
from worker.grounding import ground
from worker.llm import ChatModel
from worker.pace import Pace
from worker.prompt import Prompt, PromptTooLong, build_prompt, build_transcript_prompt
from worker.speech import VoiceFailed
from worker.store import AnswerContext, Heartbeat, LoadFailed, Step, TaskStore
from worker.voice import VOICE_ERRORS, VoiceWork

log = logging.getLogger(__name__)

GENERATION_FAILED = "Something went wrong while writing the answer. Please try again."
TIMED_OUT = "The answer took too long and was stopped. Please try a shorter question."
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
    # Set by this process's cancel listener the moment the gateway announces a cancel.
    cancel_heard: threading.Event | None = None
    # A stop sequence was written: the answer ends before it.
    stopped: bool = False
    # The calls the answer made to the request's tools.
    calls: list[ToolCall] = field(default_factory=list)

    def finish_reason(self, max_tokens: int) -> FinishReason:
        if self.timed_out:
            return FinishReason.TIMEOUT
        if self.cancel:
            return FinishReason.CANCEL
        if self.calls:
            return FinishReason.TOOL_CALLS
        if self.stopped:
            return FinishReason.STOP
        return FinishReason.LENGTH if self.tokens >= max_tokens else FinishReason.STOP

    def should_stop(self) -> bool:
        # Called by the model once per new token: the place where cancel and time limits act.
        self.tokens += 1
        if time.monotonic() > self.deadline:
            self.timed_out = True
        if self.cancel_heard is not None and self.cancel_heard.is_set():
            self.cancel = True
        return self.cancel or self.timed_out or self.lost or self.stopped

    def add(self, piece: str, stops: tuple[str, ...]) -> None:
        """Add a piece of the answer; at a stop sequence, end the text before it."""
        if self.stopped:
            return  # the one token the model makes before it sees the stop
        start = max(0, len(self.text) - max((len(s) for s in stops), default=0) + 1)
        self.text += piece
        found = [at for stop in stops if (at := self.text.find(stop, start)) >= 0]
        if found:
            self.text = self.text[: min(found)]
            self.stopped = True

    def shown(self, stops: tuple[str, ...]) -> str:
        """What may be published so far: without a tail that could still become a stop sequence."""
        held = max((len(s) for s in stops), default=1) - 1
        return self.text if self.stopped or not held else self.text[: max(0, len(self.text) - held)]


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
        announce: Callable[[Notice], None] = lambda _notice: None,
        voice: VoiceWork | None = None,
        cancels: CancelNotices | None = None,
        documents: DocumentWork | None = None,
        embeddings: EmbeddingWork | None = None,
    ) -> None:
        """`announce(task_id)` is called after each change is committed (it wakes the followers),
        `announce(growth)` as the answer grows between saves;
        `cancels` hears cancels as they are asked for (without it, they are read at each publish)."""
        self.db = db
        self.model = model
        self.model_settings = model_settings
        self.worker_settings = worker_settings
        self.worker_name = worker_name
        self.store = TaskStore(db, model_settings, worker_name, announce, GENERATION_FAILED)
        self.voice = voice or VoiceWork(db, None, worker_name, announce)
        self.documents = documents or DocumentWork(db, DocumentSettings(), worker_name, announce)
        self.embeddings = embeddings or EmbeddingWork(db, None, worker_name, announce)
        self.cancels = cancels
        self.pace = Pace(worker_settings.partial_interval_seconds)
        self._clock = clock

    def run(self, task_id: str) -> None:
        """Answer `task_id` once every earlier message of its conversation has been answered.

        An earlier task that is still queued is answered here first (whoever claims a task answers
        it); one that another worker is answering is waited for. A task that is no longer queued
        was handled elsewhere, so a repeated job does nothing.
        """
        while True:
            try:
                step = self.store.claim_next(task_id)
            except LoadFailed as exc:
                raise ReplyFailed(str(exc)) from None
            if step is Step.DONE:
                return
            if step is Step.WAIT:
                # Another worker is answering an earlier message of this conversation: wait for it.
                # (Should that worker die, the recovery thread fails its task and the wait ends.)
                time.sleep(_WAIT_POLL_SECONDS)
                continue
            if step is Step.AGAIN:
                continue
            self._answer(step)
            if step.task_id == task_id:
                return

    def _answer(self, context: AnswerContext) -> None:
        started = self._clock()
        if context.voice:
            heard = self._hear(context)
            if heard is None:
                return
            context = heard
        context = self._ground(context)
        prompt = self._prompt(context)
        if prompt is None:
            return
        progress, elapsed = self._write(context, prompt)
        spec, transcript = context.sampling.tools, context.transcript
        if (
            spec is not None
            and transcript is not None
            and tool_calls.answer_in_words(progress.calls, spec, transcript)
        ):
            # A small model given its tools' results often calls the same tool again instead of
            # answering, or calls a tool it invented (measured with Qwen2.5-Coder 1.5B): the answer
            # is written again with no tools offered, which it then gives in words.
            log.info("task=%s called a tool it should not have; answering without tools", context.task_id)
            context = replace(context, sampling=replace(context.sampling, tools=None))
            prompt = self._prompt(context)
            if prompt is None:
                return
            progress, more = self._write(context, prompt)
            elapsed += more
        usage = {
            "model_name": self.model.name[:128],  # the column's size; a remote name could be longer
            "prompt_tokens": prompt.rendered.size,
            "completion_tokens": progress.tokens,
            "generation_seconds": round(elapsed, 4),
            "first_token_seconds": progress.first_token_at,
            "finish_reason": progress.finish_reason(prompt.max_tokens),
        }
        task_id = context.task_id
        if progress.timed_out:
            usage.pop("finish_reason")
            self.store.fail(task_id, TIMED_OUT, FinishReason.TIMEOUT, **usage)
            raise ReplyFailed(f"task {task_id}: timed out")
        outcome = TaskStatus.CANCELED if progress.cancel else TaskStatus.FINISHED
        self.store.complete(task_id, outcome, progress.text, usage, progress.calls)
        log.info(
            "task=%s %s: %d tokens in %.2fs (%.1f tok/s), total %.2fs",
            task_id,
            outcome,
            progress.tokens,
            elapsed,
            progress.tokens / elapsed if elapsed > 0 else 0.0,
            self._clock() - started,
        )

    def _ground(self, context: AnswerContext) -> AnswerContext:
        """The context with passages of the conversation's documents before its message, when
        the conversation has documents and they hold something for it."""
        if context.transcript is not None:
            return context
        previous = context.history[-1][0] if context.history else None
        found = self.documents.find(
            context.user_id, context.conversation_id, context.documents, context.message, previous
        )
        # A third of the window for passages: the rest is the history's and the reply's.
        grounded = ground(context.message, found, self.model.count_tokens, self.model.context_window // 3)
        if grounded is None:
            return context
        self.store.note_sources(context.task_id, grounded.sources)
        log.info("task=%s grounded in %d passage(s)", context.task_id, len(grounded.sources))
        return replace(context, message=grounded.message)

    def _hear(self, context: AnswerContext) -> AnswerContext | None:
        """The context with the voice note's words as its message; None when there is nothing to
        answer (the note failed, or the task was canceled or taken away while it was heard)."""
        task_id = context.task_id
        heartbeat = Heartbeat(self.db, task_id, self.worker_settings.heartbeat_interval_seconds)
        heartbeat.start()
        try:
            text = self.voice.hear(task_id, lambda: self.store.standing(task_id).cancel)
        except VoiceFailed as exc:
            self.store.fail(task_id, VOICE_ERRORS[exc.reason], exc.reason)
            return None
        finally:
            heartbeat.stop()
        standing = self.store.standing(task_id)
        if standing.lost:
            return None
        if standing.cancel:
            self.store.complete(task_id, TaskStatus.CANCELED, "", {"finish_reason": FinishReason.CANCEL})
            return None
        return replace(context, message=text)

    def _prompt(self, context: AnswerContext) -> Prompt | None:
        """The prompt, or None when the message cannot be answered (the task is failed, told why)."""
        task_id = context.task_id
        try:
            if context.transcript is not None:
                tools = context.sampling.tools
                prompt = build_transcript_prompt(
                    self.model,
                    context.system_prompt,
                    context.transcript,
                    tools.definitions() if tools else None,
                    context.max_tokens,
                    self.model_settings.min_reply_tokens,
                )
            else:
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
            self.store.fail(task_id, exc.user_message, exc.failure_kind, prompt_tokens=exc.prompt_tokens)
            return None
        except Exception as exc:
            log.exception("task=%s failed while preparing the prompt", task_id)
            self.store.fail(task_id, GENERATION_FAILED, FinishReason.ERROR)
            raise ReplyFailed(f"task {task_id}: preparing the prompt failed") from exc
        log.info(
            "task=%s generating: %d prompt tokens, %d history messages, up to %d new tokens",
            task_id,
            prompt.rendered.size,
            prompt.history_messages,
            prompt.max_tokens,
        )
        return prompt

    def _write(self, context: AnswerContext, prompt: Prompt) -> tuple[_Progress, float]:
        """Generate the answer, publishing it as it grows; returns it and the seconds it took.

        A failure marks the task failed with words its user can read, and is raised to RQ."""
        task_id = context.task_id
        progress = _Progress(
            deadline=time.monotonic() + self.worker_settings.generation_timeout_seconds,
            cancel_heard=self.cancels.watch(task_id) if self.cancels else None,
        )
        heartbeat = Heartbeat(self.db, task_id, self.worker_settings.heartbeat_interval_seconds)
        heartbeat.start()
        began = self._clock()
        try:
            # The first words are shown and saved at once; then the new text goes to the followers
            # at the worker's pace (worker/pace.py), and the whole text to the database less often.
            last_flush = last_save = float("-inf")
            sent = 0
            pieces = self.model.generate(
                prompt.rendered,
                prompt.max_tokens,
                progress.should_stop,
                context.sampling,
                # The model keeps each conversation's computed context for its next turn.
                cache_key=f"conversation-{context.conversation_id}",
            )
            with self.pace.writing():
                for piece in pieces:
                    if isinstance(piece, ToolCall):
                        progress.calls.append(piece)  # they come last, once the answer is whole
                        continue
                    if progress.first_token_at is None:
                        progress.first_token_at = round(self._clock() - began, 4)
                    progress.add(piece, context.sampling.stop)
                    now = self._clock()
                    if now - last_flush < self.pace.interval():
                        continue
                    last_flush = now
                    shown = progress.shown(context.sampling.stop)
                    if len(shown) > sent:
                        self.store.grow(task_id, sent, shown[sent:])
                        sent = len(shown)
                    if now - last_save >= self.worker_settings.partial_save_seconds:
                        standing = self.store.publish(task_id, shown)
                        progress.lost = standing.lost
                        progress.cancel = progress.cancel or standing.cancel
                        last_save = self._clock()
        except Exception as exc:
            timed_out = _is_job_timeout(exc)
            log.exception("task=%s generation failed", task_id)
            # A model that can say what went wrong in a user's words (a remote server) is let to.
            if isinstance(exc, ModelFailure):
                message, kind = exc.user_message, exc.failure_kind
            else:
                message = TIMED_OUT if timed_out else GENERATION_FAILED
                kind = FinishReason.TIMEOUT if timed_out else FinishReason.ERROR
            self.store.fail(task_id, message, kind, prompt_tokens=prompt.rendered.size)
            # `from None`: RQ stores the traceback in Redis, and the cause might quote user text.
            raise ReplyFailed(
                f"task {task_id}: {'timed out' if timed_out else 'generation failed'}"
            ) from None
        except BaseException:
            # The worker is being shut down the hard way: say so, and let the exit go on.
            self.store.fail(task_id, WORKER_LOST, FinishReason.WORKER_LOST)
            raise
        finally:
            heartbeat.stop()
            if self.cancels is not None:
                self.cancels.forget(task_id)
        return progress, self._clock() - began


def _is_job_timeout(exc: BaseException) -> bool:
    """Whether RQ's job timeout is behind `exc`.

    The timeout arrives as an exception wherever the job happens to be: between two tokens, or in
    the middle of a database call, where the driver's cleanup can fail in turn (PostgreSQL: "another
    command is already in progress") and raise its own error with the timeout as its context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, JobTimeoutException):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
