"""The worker paces the sending of answers as they grow: the same sends per second however many
answers it writes at once (worker/pace.py says why)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from rq import Queue

from shared.config import ModelSettings, WorkerSettings
from shared.db import Database
from shared.jobs import Growth, Notice
from tests.conftest import run_queued_jobs
from tests.fakes import FakeChatModel
from tests.helpers import send, status
from worker import tasks
from worker.pace import Pace
from worker.reply import ReplyService

PIECE_SECONDS = 0.25  # what each token takes, on the test's own clock


class _Timed(FakeChatModel):
    """Endless answers whose every token moves the test's clock on by PIECE_SECONDS."""

    def __init__(self) -> None:
        super().__init__(endless=True)
        self.now = 0.0

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        for piece in super().generate(*args, **kwargs):
            self.now += PIECE_SECONDS
            yield piece


def test_the_interval_grows_with_the_answers_written_at_once_and_comes_back() -> None:
    pace = Pace(0.25)
    assert pace.interval() == 0.25
    with pace.writing():
        assert pace.interval() == 0.25  # one answer alone: as configured
        with pace.writing(), pace.writing(), pace.writing():
            assert pace.interval() == 1.0
    assert pace.interval() == 0.25
    try:
        with pace.writing():
            raise RuntimeError("an answer that failed")
    except RuntimeError:
        pass
    assert pace.interval() == 0.25


def test_an_answer_written_beside_another_is_sent_half_as_often(
    client: TestClient,
    db: Database,
    queue: Queue,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> None:
    sent: dict[str, int] = {}

    def announce(notice: Notice) -> None:
        if isinstance(notice, Growth):
            sent[notice.task_id] = sent.get(notice.task_id, 0) + 1

    model = _Timed()
    service = ReplyService(
        db,
        model,
        model_settings.model_copy(update={"max_tokens": 48}),
        worker_settings.model_copy(update={"partial_interval_seconds": 1.0, "partial_save_seconds": 3600}),
        "test-worker",
        clock=lambda: model.now,
        announce=announce,
    )
    tasks.install(service)
    try:
        alone = send(client, "one answer alone")
        run_queued_jobs(queue)
        with service.pace.writing():  # another answer is being written meanwhile
            beside = send(client, "one answer beside another")
            run_queued_jobs(queue)
    finally:
        tasks.install(None)

    # Each answer is whole, whatever the pace of its pieces.
    for task_id in (alone, beside):
        assert status(client, task_id)["answer"].endswith(" more" * 10)
    # 48 tokens, 12 s of the test's clock: a piece about every second alone, every two beside.
    assert sent[alone] >= 10
    assert sent[beside] <= (sent[alone] + 1) // 2
    assert sent[beside] >= 5
