"""Change notices leave the worker from a thread of their own: Redis never holds up an answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from shared.config import ModelSettings, WorkerSettings
from shared.db import Database
from shared.jobs import changes_channel
from tests.fakes import FakeChatModel
from tests.helpers import send, status
from worker.notices import ChangeNotices
from worker.reply import ReplyService


def test_notices_are_published_in_order(queue: Queue, redis_conn: Redis) -> None:
    with redis_conn.pubsub(ignore_subscribe_messages=True) as pubsub:  # type: ignore[no-untyped-call]
        pubsub.subscribe(changes_channel(queue.name))
        notices = ChangeNotices(queue)
        for task_id in ("t1", "t2", "t1"):
            notices(task_id)
        notices.stop()
        received: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)
            if message:
                received.append(message["data"])
    assert received == [b"t1", b"t2", b"t1"]


@pytest.fixture
def silent_redis() -> Iterator[Queue]:
    """A queue whose 'Redis' takes connections and never answers (a host gone quiet mid-network)."""
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()
    connection = Redis(host=host, port=port, socket_timeout=30, socket_connect_timeout=30)
    yield Queue("silent", connection=connection)
    server.close()  # the stuck notice ends with a connection error, which it ignores


def test_an_answer_is_written_while_redis_does_not_answer(
    client: TestClient,
    db: Database,
    silent_redis: Queue,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> None:
    """Each notice would wait 30 s for this Redis; the answer must not wait for any of them."""
    notices = ChangeNotices(silent_redis)
    service = ReplyService(db, FakeChatModel(), model_settings, worker_settings, "w", announce=notices)
    task_id = send(client, "are you there?")

    started = time.monotonic()
    service.run(task_id)

    assert time.monotonic() - started < 15
    assert status(client, task_id)["answer"] == "Answer 1 to 'are you there?' (saw 0 answers)"
    notices.stop(timeout=0.1)
