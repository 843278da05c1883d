"""Workers that die, hang or never stop: every task ends, and the worker (or its successor) goes on."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from rq.job import Job
from rq.timeouts import JobTimeoutException

from shared.recovery import WORKER_LOST
from tests.conftest import wait_for
from tests.fakes import FakeChatModel
from tests.helpers import send as _send
from tests.helpers import status as _status
from worker.reply import TIMED_OUT


@pytest.mark.slow
def test_a_worker_killed_mid_answer_fails_its_task_and_the_next_is_served(
    client: TestClient, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Figure held: SIGKILL while writing; the task fails with a readable message within
    1.25 x TASK_STALE_AFTER_SECONDS of silence (3 s here), and the next message is answered."""
    settings = {"TASK_STALE_AFTER_SECONDS": "3", "HEARTBEAT_INTERVAL_SECONDS": "0.5"}
    # One slot: the next message waits for a worker instead of joining the doomed one.
    victim = fake_workers(
        FAKE_TOKEN_DELAY="0.05", FAKE_ENDLESS="1", MAX_TOKENS="100000", PARALLEL="1", **settings
    )
    doomed = client.post("/api/chat", json={"user_id": "a", "text": "long story"}).json()["task_id"]
    wait_for(lambda: _status(client, doomed)["partial_text"], timeout=30)
    following = client.post("/api/chat", json={"user_id": "b", "text": "next"}).json()["task_id"]

    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert _status(client, doomed)["status"] == "started"
    # What a supervisor does: start a worker again.
    fake_workers(**settings)

    failed = wait_for(lambda: _status(client, doomed)["status"] == "failed", timeout=30)
    assert failed
    assert _status(client, doomed)["error"] == WORKER_LOST
    assert _status(client, doomed)["finish_reason"] == "worker_lost"
    wait_for(lambda: _status(client, following)["status"] == "finished", timeout=30)
    assert _status(client, following)["answer"] == "Answer 1 to 'next' (saw 0 answers)"


def test_an_endless_answer_is_stopped_by_max_tokens(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    """Figure held: a model that never stops: finished at max_tokens (64), and the worker goes on."""
    fake_model.endless = True
    task_id = _send(client, "never stop")
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "finished"
    assert status["usage"]["completion_tokens"] <= 64 + 1
    fake_model.endless = False
    next_id = _send(client, "and now?")
    run_jobs()
    assert _status(client, next_id)["status"] == "finished"


def test_a_slow_answer_times_out(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel, reply_service: Any
) -> None:
    """Figure held: an answer over GENERATION_TIMEOUT_SECONDS (0.3 s here) fails as timed out;
    the next is answered."""
    reply_service.worker_settings.generation_timeout_seconds = 0.3
    fake_model.endless = True
    fake_model.token_delay = 0.05
    task_id = _send(client, "slow")
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "failed"
    assert status["error"] == TIMED_OUT
    assert status["finish_reason"] == "timeout"
    # And the worker keeps serving.
    fake_model.endless = False
    fake_model.token_delay = 0
    reply_service.worker_settings.generation_timeout_seconds = 30
    next_id = _send(client, "quick")
    run_jobs()
    assert _status(client, next_id)["status"] == "finished"


def test_rq_job_timeout_is_a_backstop(
    client: TestClient, queue: Queue, run_jobs: Callable[[], None], fake_model: FakeChatModel
) -> None:
    """Figure held: a job over RQ's own timeout (1 s) is stopped and its task fails as timed out."""
    fake_model.endless = True
    fake_model.token_delay = 0.05
    task_id = _send(client, "hang on")
    # The same job with a 1-second RQ limit, far below the generation timeout.
    Job.fetch(task_id, connection=queue.connection, serializer=queue.serializer).delete()
    queue.enqueue("worker.tasks.generate_reply", task_id, job_id=task_id, job_timeout=1)
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "failed"
    assert status["error"] == TIMED_OUT
    assert status["finish_reason"] == "timeout"
    assert task_id in queue.failed_job_registry.get_job_ids()


def test_a_job_timeout_inside_a_database_call_still_fails_as_timed_out(
    client: TestClient, run_jobs: Callable[[], None], fake_model: FakeChatModel, monkeypatch: Any
) -> None:
    """RQ's timeout can land in the middle of a database call; the driver's cleanup then fails in
    turn (PostgreSQL: "another command is already in progress") with the timeout as its context.
    The task is still told it took too long, not that something broke."""

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        try:
            raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")
        except JobTimeoutException:
            raise RuntimeError("sending query failed: another command is already in progress")  # noqa: B904

    task_id = _send(client, "hang on")
    monkeypatch.setattr(fake_model, "generate", interrupted)
    run_jobs()

    status = _status(client, task_id)
    assert status["status"] == "failed"
    assert status["error"] == TIMED_OUT
    assert status["finish_reason"] == "timeout"


@pytest.mark.slow
def test_a_worker_killed_mid_batch_fails_every_answer_it_was_writing(
    client: TestClient, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Figure held: SIGKILL while four answers are written at once; all four fail as lost within
    1.25 x TASK_STALE_AFTER_SECONDS, none stays started, and the next message is answered."""
    settings = {"TASK_STALE_AFTER_SECONDS": "3", "HEARTBEAT_INTERVAL_SECONDS": "0.5"}
    victim = fake_workers(
        FAKE_TOKEN_DELAY="0.05", FAKE_ENDLESS="1", MAX_TOKENS="100000", PARALLEL="4", **settings
    )
    doomed = [_send(client, "long story", user=f"person{i}") for i in range(4)]
    # All four are being written at the same time by the one process.
    wait_for(lambda: all(_status(client, t)["partial_text"] for t in doomed), timeout=30)

    victim.send_signal(signal.SIGKILL)
    victim.wait()
    fake_workers(**settings)

    for task_id in doomed:
        wait_for(lambda t=task_id: _status(client, t)["status"] != "started", timeout=30)  # type: ignore[misc]
        assert _status(client, task_id)["status"] == "failed"
        assert _status(client, task_id)["finish_reason"] == "worker_lost"
    later = _send(client, "next", user="person9")
    wait_for(lambda: _status(client, later)["status"] == "finished", timeout=30)


@pytest.mark.slow
def test_sigterm_lets_every_answer_in_progress_finish(
    client: TestClient, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Figure held: SIGTERM while three answers are written at once; all three finish whole, then the
    process exits with 0."""
    worker = fake_workers(FAKE_TOKEN_DELAY="0.15", PARALLEL="3")
    tasks = [_send(client, "hello there", user=f"person{i}") for i in range(3)]
    wait_for(lambda: all(_status(client, t)["partial_text"] for t in tasks), timeout=30)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    for task_id in tasks:
        status = _status(client, task_id)
        assert status["status"] == "finished"
        assert status["answer"] == "Answer 1 to 'hello there' (saw 0 answers)"


@pytest.mark.slow
def test_rq_job_timeout_stops_an_answer_in_a_slot_thread(
    client: TestClient, queue: Queue, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Figure held: in a worker process (answers in threads), a job over RQ's own timeout (1 s) is
    stopped and its task fails as timed out; the slot goes on serving."""
    task_id = _send(client, "hang on")
    Job.fetch(task_id, connection=queue.connection, serializer=queue.serializer).delete()
    queue.enqueue("worker.tasks.generate_reply", task_id, job_id=task_id, job_timeout=1)
    fake_workers(FAKE_TOKEN_DELAY="0.05", FAKE_ENDLESS="1", MAX_TOKENS="100000", PARALLEL="1")

    wait_for(lambda: _status(client, task_id)["status"] == "failed", timeout=30)
    status = _status(client, task_id)
    assert (status["error"], status["finish_reason"]) == (TIMED_OUT, "timeout")
    assert task_id in queue.failed_job_registry.get_job_ids()
