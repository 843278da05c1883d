"""Following a task without polling: ETags and long polls on /api/status, and the change notices
from the workers that wake them (and the event streams) at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
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
from shared.jobs import announce_change, changes_channel
from tests.conftest import API_KEY, RedisServer, make_client, wait_for
from tests.fakes import FakeChatModel
from tests.helpers import send
from worker.reply import ReplyFailed, ReplyService


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
    fake_workers(FAKE_TOKEN_DELAY="0.05", PARTIAL_INTERVAL_SECONDS="0.05")
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
    announced: list[str] = []

    def service(model: FakeChatModel) -> ReplyService:
        return ReplyService(db, model, model_settings, worker_settings, "w", announce=announced.append)

    done = send(client, "a normal question")
    service(FakeChatModel()).run(done)
    # Claimed, first words, finished: each change is announced once it is committed.
    assert announced == [done] * 3
    assert client.get(f"/api/status/{done}").json()["status"] == "finished"

    announced.clear()
    broken = send(client, "this one breaks", user="u2")
    with pytest.raises(ReplyFailed):
        service(FakeChatModel(fail_after=0)).run(broken)
    assert announced == [broken] * 2  # claimed, failed
    assert client.get(f"/api/status/{broken}").json()["status"] == "failed"


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
