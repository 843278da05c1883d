"""The worker's answering logic with the scripted model: results, history, order, cancel, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from rq.job import Job

from shared.config import ModelSettings, WorkerSettings
from shared.db import Database
from shared.jobs import announce_change
from shared.models import Task
from tests.conftest import run_queued_jobs, wait_for
from tests.fakes import FakeChatModel
from tests.helpers import send as _send
from tests.helpers import status as _status
from worker import tasks
from worker.cancels import CancelNotices
from worker.reply import GENERATION_FAILED, ReplyService


def test_answer_and_usage_are_written(client: TestClient, run_jobs: Callable[[], None]) -> None:
    task_id = _send(client, "hello")
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "finished"
    assert status["answer"] == "Answer 1 to 'hello' (saw 0 answers)"
    assert status["partial_text"] is None and status["error"] is None
    usage = status["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] >= 6
    assert usage["tokens_per_second"] > 0
    assert usage["queue_wait_seconds"] >= 0
    assert usage["generation_seconds"] > 0


def test_each_answer_sees_the_earlier_turns(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    ids = [_send(client, f"question {n}") for n in range(3)]
    run_jobs()

    answers = [_status(client, task_id)["answer"] for task_id in ids]
    assert answers == [f"Answer {n + 1} to 'question {n}' (saw {n} answers)" for n in range(3)]
    last_prompt = fake_model.prompts[-1]
    assert last_prompt[0] == {"role": "system", "content": "Be brief."}
    assert [m["content"] for m in last_prompt[1:]] == [
        "question 0",
        answers[0],
        "question 1",
        answers[1],
        "question 2",
    ]


def test_history_is_trimmed_to_the_window(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    # The fake counts one token per byte: a 1,000-token window holds only a few 150-byte turns.
    fake_model._window = 1000
    ids = [_send(client, f"{n:02d} " + "x" * 150) for n in range(8)]
    run_jobs()

    assert all(_status(client, t)["status"] == "finished" for t in ids)
    last = fake_model.prompts[-1]
    assert fake_model.render_chat(last).size + 64 <= 1000
    questions = [m["content"][:2] for m in last if m["role"] == "user"]
    # The newest turns are kept, in order, ending with the message being answered.
    assert questions[-1] == "07"
    assert questions == sorted(questions) and "00" not in questions
    assert len(questions) >= 2


def test_conversation_order_holds_when_jobs_arrive_out_of_order(
    client: TestClient, db: Database, queue: Queue, run_jobs: Callable[[], None]
) -> None:
    first, second = _send(client, "first"), _send(client, "second")
    # Put the second message's job ahead of the first's, as a race between two gateway threads could.
    second_job = Job.fetch(second, connection=queue.connection, serializer=queue.serializer)
    queue.remove(second_job)
    queue.enqueue_job(second_job, at_front=True)

    run_jobs()

    a1, a2 = _status(client, first), _status(client, second)
    assert a1["answer"] == "Answer 1 to 'first' (saw 0 answers)"
    assert a2["answer"] == "Answer 2 to 'second' (saw 1 answers)"
    assert a1["finished_at"] <= a2["started_at"]


def test_partial_text_is_visible_while_generating(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    fake_model.token_delay = 0.05
    fake_model.endless = True
    task_id = _send(client, "tell me everything")
    seen: list[str] = []

    def watch() -> None:
        def partial() -> str | None:
            text: str | None = _status(client, task_id)["partial_text"]
            return text

        seen.append(str(wait_for(partial, timeout=10, interval=0.02)))
        time.sleep(0.4)
        seen.append(str(_status(client, task_id)["partial_text"]))
        client.post(f"/api/tasks/{task_id}/cancel")

    watcher = threading.Thread(target=watch)
    watcher.start()
    run_jobs()
    watcher.join()

    assert seen[0].startswith("Answer")
    assert len(seen[1]) > len(seen[0]) and seen[1].startswith(seen[0])


class _CancelAt(FakeChatModel):
    """Endless answers; at the `at`-th token `on_token` runs (it asks for the cancel and waits until
    this worker heard it), then tokens go on as long as the worker lets them."""

    def __init__(self, at: int) -> None:
        super().__init__(endless=True)
        self.at = at
        self.on_token: Callable[[], None] = lambda: None

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        for produced, piece in enumerate(super().generate(*args, **kwargs), start=1):
            yield piece
            if produced == self.at:
                self.on_token()


def test_a_cancel_stops_the_answer_at_its_next_token_without_waiting_for_a_publish(
    client: TestClient,
    db: Database,
    queue: Queue,
    redis_conn: Redis,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> None:
    """Partial answers are published once an hour here, so only the cancel notice can reach the
    engine: the answer ends with exactly the tokens made before the cancel was heard."""
    model = _CancelAt(at=5)
    cancels = CancelNotices(redis_conn, queue.name)
    cancels.start()
    assert cancels.subscribed.wait(10)
    slow_publishing = worker_settings.model_copy(update={"partial_interval_seconds": 3600})
    service = ReplyService(
        db,
        model,
        model_settings,
        slow_publishing,
        "test-worker",
        announce=partial(announce_change, queue),
        cancels=cancels,
    )
    task_id = _send(client, "go on forever")

    def cancel_and_wait_until_heard() -> None:
        assert client.post(f"/api/tasks/{task_id}/cancel").status_code == 200
        assert cancels.watch(task_id).wait(10), "the cancel notice never reached the worker"

    model.on_token = cancel_and_wait_until_heard
    tasks.install(service)
    try:
        run_queued_jobs(queue)
    finally:
        tasks.install(None)
        cancels.stop()

    status = _status(client, task_id)
    assert status["status"] == "canceled"
    # Five tokens: "Answer 1 to 'go on forever'" has five words; not one more after the cancel.
    assert status["answer"] == "Answer 1 to 'go on"
    # The next message goes on normally, and sees what the user was shown.
    next_id = _send(client, "and now?")
    model.endless, model.on_token = False, lambda: None
    tasks.install(service)
    try:
        run_queued_jobs(queue)
    finally:
        tasks.install(None)
    assert _status(client, next_id)["answer"].endswith("(saw 1 answers)")


def test_a_model_error_fails_the_task_readably_and_in_rq(
    client: TestClient, queue: Queue, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    fake_model.fail_after = 2
    task_id = _send(client, "secret question about my bank")
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "failed"
    assert status["error"] == GENERATION_FAILED
    assert status["finish_reason"] == "error"
    assert task_id in queue.failed_job_registry.get_job_ids()
    result = Job.fetch(task_id, connection=queue.connection, serializer=queue.serializer).latest_result()
    assert result is not None and result.exc_string is not None
    assert "ReplyFailed" in result.exc_string
    assert "bank" not in result.exc_string


def test_a_repeated_job_does_not_answer_twice(
    client: TestClient, queue: Queue, run_jobs: Callable[[], None], fake_model: FakeChatModel, db: Database
) -> None:
    task_id = _send(client, "once")
    run_jobs()
    queue.enqueue("worker.tasks.generate_reply", task_id)
    run_jobs()

    assert len(fake_model.prompts) == 1
    assert _status(client, task_id)["status"] == "finished"


def test_status_counts_are_consistent_with_the_database(
    client: TestClient, db: Database, run_jobs: Callable[[], None]
) -> None:
    ids = [_send(client, f"q{n}", user=f"user-{n}") for n in range(4)]
    run_jobs()
    with db.reading() as s:
        statuses = {t.id: t.status for t in s.query(Task).all()}
    assert statuses == dict.fromkeys(ids, "finished")
