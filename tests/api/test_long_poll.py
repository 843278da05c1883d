"""Following a task without polling: ETags and long polls on /api/status, and the change notices
from the workers that wake them (and the event streams) at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from api.services import changes
from api.services.changes import TaskChanges
from shared.config import GatewaySettings, ModelSettings, QueueSettings, WorkerSettings
from shared.db import Database
from shared.jobs import Growth, Notice, announce_change, changes_channel
from shared.models import Task, TaskStatus
from tests.conftest import API_KEY, RedisServer, make_client, wait_for
from tests.fakes import FakeChatModel
from tests.helpers import send
from worker.reply import ReplyFailed, ReplyService
from worker.store import Step, TaskStore


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Followers look on their own only once a minute: whatever wakes them sooner is a notice."""
    monkeypatch.setattr(changes, "FALLBACK_SECONDS", 60.0)


def test_status_has_an_etag_and_an_unchanged_task_gets_304(client: TestClient) -> None:
    task_id = send(client, "no worker runs, so nothing changes")
    first = client.get(f"/api/status/{task_id}")
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"') and tag.endswith('"')
    assert client.get(f"/api/status/{task_id}").headers["ETag"] == tag  # same document, same tag

    assert client.get(f"/api/status/{task_id}", headers={"If-None-Match": tag}).status_code == 304
    assert client.get(f"/api/status/{task_id}", headers={"If-None-Match": f'"x", W/{tag}'}).status_code == 304
    other = client.get(f"/api/status/{task_id}", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json()["task_id"] == task_id

    started = time.monotonic()
    waited = client.get(f"/api/status/{task_id}", params={"wait": 0.6}, headers={"If-None-Match": tag})
    assert waited.status_code == 304 and waited.headers["ETag"] == tag
    assert time.monotonic() - started >= 0.6  # it did wait for a change that never came

    # Without If-None-Match there is nothing to wait for: the current state comes at once.
    assert client.get(f"/api/status/{task_id}", params={"wait": 30}).status_code == 200


def test_long_poll_bounds(client: TestClient) -> None:
    task_id = send(client, "bounds")
    assert client.get(f"/api/status/{task_id}", params={"wait": 61}).status_code == 422
    assert client.get(f"/api/status/{task_id}", params={"wait": -1}).status_code == 422
    missing = client.get("/api/status/nope", params={"wait": 5}, headers={"If-None-Match": '"a"'})
    assert missing.status_code == 404


def _long_poll_until_final(
    client: TestClient | httpx.Client, task_id: str
) -> tuple[list[dict[str, Any]], int]:
    """Follow a task by long polls only; the states seen (200s) and how many requests it took."""
    seen: list[dict[str, Any]] = []
    tag = None
    requests = 0
    while not seen or seen[-1]["status"] not in ("finished", "failed", "canceled"):
        headers: dict[str, str] = {"If-None-Match": tag} if tag else {}
        response = client.get(f"/api/status/{task_id}", params={"wait": 30}, headers=headers)
        requests += 1
        if response.status_code == 200:
            seen.append(response.json())
            tag = response.headers["ETag"]
    return seen, requests


@pytest.mark.usefixtures("no_fallback")
def test_a_long_poll_returns_as_soon_as_the_worker_announces_a_change(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    task_id = send(client, "wake me when it is done")
    tag = client.get(f"/api/status/{task_id}").headers["ETag"]
    result: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        response = client.get(f"/api/status/{task_id}", params={"wait": 45}, headers={"If-None-Match": tag})
        result.update(response=response, seconds=time.monotonic() - started)

    poller = threading.Thread(target=long_poll)
    poller.start()
    wait_for(lambda: client.app_state["changes"].watching(task_id), timeout=10)  # it waits now
    run_jobs()
    poller.join(timeout=50)

    # Neither the 45 s wait nor the one-minute fallback ran out: a notice woke the request.
    assert result["response"].status_code == 200 and result["seconds"] < 30, result
    assert result["response"].json()["status"] in ("started", "finished")
    states, requests = _long_poll_until_final(client, task_id)
    assert states[-1]["answer"] == "Answer 1 to 'wake me when it is done' (saw 0 answers)"
    assert requests == 1  # already final: one request, no polling


@pytest.mark.usefixtures("no_fallback")
def test_event_streams_are_woken_by_notices_too(client: TestClient, run_jobs: Callable[[], None]) -> None:
    task_id = send(client, "stream me")
    result: dict[str, Any] = {}

    def read_stream() -> None:
        started = time.monotonic()
        with client.stream("GET", f"/api/tasks/{task_id}/events") as response:
            result.update(body="".join(response.iter_text()), seconds=time.monotonic() - started)

    reader = threading.Thread(target=read_stream)
    reader.start()
    wait_for(lambda: client.app_state["changes"].watching(task_id), timeout=10)  # it follows now
    run_jobs()  # in this thread: RQ's worker sets signal handlers, which only the main thread may
    reader.join(timeout=50)
    assert result["seconds"] < 30, result  # the fallback (a minute) never had to act
    assert result["body"].rstrip().splitlines()[-2] == "event: done"
    assert "Answer 1 to 'stream me'" in result["body"]


@pytest.mark.slow
def test_a_served_gateway_follows_a_worker_process_by_notices(
    served_gateway: Any, fake_workers: Callable[..., Any]
) -> None:
    # A real worker process announcing over Redis, a real uvicorn: every change in order, few requests.
    # The text grows by the worker's growth notices alone: it saves only the first words.
    fake_workers(FAKE_TOKEN_DELAY="0.05", PARTIAL_INTERVAL_SECONDS="0.05", PARTIAL_SAVE_SECONDS="3600")
    with httpx.Client(base_url=served_gateway.url, headers={"X-API-Key": API_KEY}, timeout=40) as http:
        task_id = http.post("/api/chat", json={"user_id": "lp", "text": "one two three"}).json()["task_id"]
        states, requests = _long_poll_until_final(http, task_id)
    texts = [state["answer"] or state["partial_text"] or "" for state in states]
    final = "Answer 1 to 'one two three' (saw 0 answers)"
    assert texts[-1] == final
    growing = [t for t in texts if t]
    assert all(final.startswith(t) for t in growing) and len(growing) >= 2, texts
    # One request per change seen (and at most a few 304s), not one per poll interval.
    assert requests <= len(states) + 3, (requests, texts)


# --- the subscription itself -------------------------------------------------------------------


def _run_changes(url: str, channel: str, scenario: Callable[[TaskChanges], Any]) -> None:
    async def main() -> None:
        watcher = TaskChanges(url, channel)
        watcher.start()
        try:
            await scenario(watcher)
        finally:
            await watcher.aclose()
            assert watcher._listening is not None and watcher._listening.done()

    asyncio.run(main())


async def _until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_notices_reach_the_watchers_of_that_task_only(queue: Queue, queue_settings: Any) -> None:
    async def scenario(watcher: TaskChanges) -> None:
        await _until(lambda: watcher.subscribed)
        with watcher.watch("t1") as first, watcher.watch("t1") as second, watcher.watch("t2") as other:
            await asyncio.to_thread(announce_change, queue, "t1")
            assert await watcher.wait(first, 10) and await watcher.wait(second, 10)
            assert not other.is_set()
        assert watcher._waiting == {}  # nothing kept for requests that are gone

    _run_changes(queue_settings.redis_url, changes_channel(queue.name), scenario)


def test_without_redis_followers_poll_and_notices_resume_when_it_returns(own_redis: RedisServer) -> None:
    channel = changes_channel("outage")

    async def scenario(watcher: TaskChanges) -> None:
        await _until(lambda: watcher.subscribed)
        with watcher.watch("t1") as changed:
            own_redis.stop()
            await _until(lambda: not watcher.subscribed)
            started = time.monotonic()
            assert not await watcher.wait(changed, 30)  # no notice can come: a short poll instead
            assert time.monotonic() - started < 5
            own_redis.start()
            await _until(lambda: watcher.subscribed)
            # Whatever changed during the outage was not announced: every follower looks again.
            assert changed.is_set()
            changed.clear()
            publisher = Redis.from_url(own_redis.url)
            await _until(lambda: publisher.publish(channel, "t1") > 0)
            assert await watcher.wait(changed, 10)
            publisher.close()

    _run_changes(own_redis.url, channel, scenario)


def test_the_worker_announces_claim_progress_and_end(
    client: TestClient,
    db: Database,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> None:
    announced: list[Notice] = []

    def service(model: FakeChatModel) -> ReplyService:
        return ReplyService(db, model, model_settings, worker_settings, "w", announce=announced.append)

    done = send(client, "a normal question")
    service(FakeChatModel()).run(done)
    # Claimed, first words saved, finished: each change is announced once it is committed.
    assert [n for n in announced if isinstance(n, str)] == [done] * 3
    assert client.get(f"/api/status/{done}").json()["status"] == "finished"

    announced.clear()
    broken = send(client, "this one breaks", user="u2")
    with pytest.raises(ReplyFailed):
        service(FakeChatModel(fail_after=0)).run(broken)
    assert [n for n in announced if isinstance(n, str)] == [broken] * 2  # claimed, failed
    assert client.get(f"/api/status/{broken}").json()["status"] == "failed"


def test_the_worker_sends_each_piece_of_an_answer_once_and_saves_the_whole_text_seldom(
    client: TestClient,
    db: Database,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> None:
    """Pieces go out every partial interval (0.05 s here) as growths; the whole text is saved in the
    database at the first words and then only every PARTIAL_SAVE_SECONDS (an hour here)."""
    announced: list[Notice] = []
    seldom = worker_settings.model_copy(update={"partial_save_seconds": 3600})
    model = FakeChatModel(token_delay=0.03, endless=True)
    model_settings = model_settings.model_copy(update={"max_tokens": 40})
    service = ReplyService(db, model, model_settings, seldom, "w", announce=announced.append)
    task_id = send(client, "a long answer please")
    service.run(task_id)

    answer = client.get(f"/api/status/{task_id}").json()["answer"]
    growths = [n for n in announced if isinstance(n, Growth)]
    assert len(growths) >= 5, growths
    # Each piece starts where the one before ended: nothing is sent twice, nothing is left out.
    assert [g.at for g in growths] == [sum(len(g.text) for g in growths[:i]) for i in range(len(growths))]
    assert answer.startswith("".join(g.text for g in growths))
    assert {g.task_id for g in growths} == {task_id}
    # Claimed, the first words saved, finished: the growths in between were not saves.
    assert [n for n in announced if isinstance(n, str)] == [task_id] * 3


def test_a_gateway_shows_the_pieces_between_saves_and_fills_a_gap_from_the_next_save(
    client: TestClient, db: Database, queue: Queue, worker_settings: WorkerSettings
) -> None:
    """No worker runs: the test claims the task, saves and announces as a worker would, and long
    polls /api/status (If-None-Match) as the bot and the web page do."""
    store = TaskStore(db, ModelSettings(_env_file=None), "w", partial(announce_change, queue), "failed")
    task_id = send(client, "follow me")
    assert not isinstance(store.claim_next(task_id), Step)
    store.publish(task_id, "Hello")

    def poll(tag: str, expected: str) -> str:
        # A long poll returns once the document differs from the client's copy.
        def changed_to_expected() -> str | None:
            response = client.get(
                f"/api/status/{task_id}", params={"wait": 5}, headers={"If-None-Match": tag}
            )
            if response.status_code == 200 and response.json()["partial_text"] == expected:
                return str(response.headers["ETag"])
            return None

        return str(wait_for(changed_to_expected, timeout=30))

    tag = poll('"none"', "Hello")
    wait_for(lambda: client.app_state["changes"].subscribed, timeout=10)
    store.grow(task_id, 5, ", wor")
    tag = poll(tag, "Hello, wor")
    store.grow(task_id, 10, "ld")
    tag = poll(tag, "Hello, world")
    with db.reading() as session:  # shown, not saved
        assert session.get(Task, task_id).partial_text == "Hello"  # type: ignore[union-attr]

    # A piece that does not continue what is known (one before it was missed) is not shown...
    store.grow(task_id, 20, "lost piece")
    store.grow(task_id, 12, "!")  # a later piece, to know the one before it was handled
    tag = poll(tag, "Hello, world!")
    # ...until the next save brings the whole text, which the pieces then continue.
    store.publish(task_id, "Hello, world! How are")
    tag = poll(tag, "Hello, world! How are")
    store.grow(task_id, 21, " you?")
    poll(tag, "Hello, world! How are you?")
    store.complete(task_id, TaskStatus.FINISHED, "Hello, world! How are you?", {})
    final = client.get(f"/api/status/{task_id}").json()
    assert final["status"] == "finished" and final["answer"] == "Hello, world! How are you?"
    assert final["partial_text"] is None


def test_the_subscription_ends_with_the_gateway_every_time(
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Figure held: 20 gateway starts and stops in a row; the subscription ends each time at once
    (a cancel swallowed by the Redis client's endless read used to hold a stop for 5 s)."""
    for n in range(20):
        with make_client(gateway_settings, db_url, queue_settings) as client:
            if n % 2:  # stopped at once, or after a request
                assert client.post("/api/chat", json={"user_id": "u", "text": "hi"}).status_code == 202
    assert "did not stop" not in caplog.text
