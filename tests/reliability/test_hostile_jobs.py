"""Jobs that someone with access to Redis writes: never imported, called or unpickled by a worker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from rq.serializers import DefaultSerializer

from shared.jobs import GENERATE_REPLY
from tests.conftest import wait_for
from tests.helpers import send as _send
from tests.helpers import status as _status

pytestmark = pytest.mark.slow


class _RunsOnUnpickling:
    """Pickles into a call of `os.system`: what an attacker puts into a pickled job."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def _failed(queue: Queue, job_id: str) -> bool:
    return job_id in queue.failed_job_registry.get_job_ids()


def test_a_job_naming_another_function_is_refused_unrun(
    tmp_path: Path, queue: Queue, client: TestClient, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    mark = tmp_path / "ran"
    hostile = queue.enqueue("os.system", f"touch {mark}")
    forged = queue.enqueue(GENERATE_REPLY, "not-a-task", on_failure="os.abort")  # ours, but with a callback
    fake_workers()

    wait_for(lambda: _failed(queue, hostile.id) and _failed(queue, forged.id), timeout=30)
    assert not mark.exists()
    # The worker goes on serving.
    task_id = _send(client, "still there?")
    wait_for(lambda: _status(client, task_id)["status"] == "finished", timeout=30)


def test_a_pickled_job_is_never_unpickled(
    tmp_path: Path, queue: Queue, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    mark = tmp_path / "unpickled"
    pickling = Queue(queue.name, connection=queue.connection, serializer=DefaultSerializer)
    hostile = pickling.enqueue(GENERATE_REPLY, _RunsOnUnpickling(f"touch {mark}"))
    fake_workers()

    wait_for(lambda: _failed(queue, hostile.id), timeout=30)
    assert not mark.exists()


def test_a_task_pickled_by_the_previous_release_is_answered_after_the_upgrade(
    queue: Queue, client: TestClient, fake_workers: Callable[..., subprocess.Popen[bytes]]
) -> None:
    task_id = _send(client, "from before the upgrade")
    queue.remove(task_id)
    # What the previous release wrote: the same job, pickled.
    Queue(queue.name, connection=queue.connection, serializer=DefaultSerializer).enqueue(
        GENERATE_REPLY, task_id, job_id=task_id
    )
    fake_workers()

    wait_for(lambda: _status(client, task_id)["status"] == "finished", timeout=30)
    assert _status(client, task_id)["answer"] == "Answer 1 to 'from before the upgrade' (saw 0 answers)"
