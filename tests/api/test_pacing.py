"""Cheap status reads and paced polling: a poller cannot take the model's cores (issue: cores)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from api.services import RateLimited, credentials, status_cache
from api.services.pacing import Pacer
from shared.config import GatewaySettings, QueueSettings
from shared.db import Database
from shared.models import CredentialKind, TaskStatus
from tests.conftest import API_KEY, make_client, wait_for


class Statements:
    """Counts the SQL statements every engine of this process runs (the gateway's own included)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_args: Any) -> None:
        self.count += 1

    def during(self, action: Callable[[], Any]) -> int:
        before = self.count
        action()
        return self.count - before


@pytest.fixture
def statements() -> Iterator[Statements]:
    counter = Statements()
    event.listen(Engine, "before_cursor_execute", counter)
    yield counter
    event.remove(Engine, "before_cursor_execute", counter)


@pytest.fixture
def long_lifetimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries trusted for an hour: what is tested is the notices, not how long a slow machine takes
    to make twenty requests (a queued task's entry lives half a second)."""
    monkeypatch.setitem(status_cache.LIFETIME, TaskStatus.QUEUED, 3600.0)
    monkeypatch.setattr(status_cache, "FINAL_LIFETIME", 3600.0)


@pytest.mark.usefixtures("long_lifetimes")
def test_an_unchanged_status_is_served_without_a_database_read(
    client: TestClient, statements: Statements, run_jobs: Callable[[], None]
) -> None:
    task_id = client.post("/api/chat", json={"user_id": "u", "text": "hi"}).json()["task_id"]
    # Once the gateway's subscription to change notices is up, repeated reads come from memory.
    wait_for(lambda: statements.during(lambda: client.get(f"/api/status/{task_id}")) == 0, timeout=10)
    for _ in range(20):
        assert statements.during(lambda: client.get(f"/api/status/{task_id}").raise_for_status()) == 0

    # A change is announced by the worker: the next reads see it (from the database, once).
    run_jobs()
    reads: list[int] = []

    def finished() -> bool:
        body: dict[str, Any] = {}
        reads.append(statements.during(lambda: body.update(client.get(f"/api/status/{task_id}").json())))
        return bool(body["status"] == "finished")

    wait_for(finished, timeout=10)
    assert any(reads)
    assert statements.during(lambda: client.get(f"/api/status/{task_id}")) == 0


def test_an_entry_past_its_lifetime_is_read_again(
    client: TestClient, statements: Statements, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A queued task's place moves without a notice: its entry must not outlive LIFETIME.
    monkeypatch.setitem(status_cache.LIFETIME, TaskStatus.QUEUED, 0.0)
    task_id = client.post("/api/chat", json={"user_id": "u", "text": "hi"}).json()["task_id"]
    wait_for(lambda: client.app_state["changes"].cache.enabled, timeout=10)
    for _ in range(3):
        assert statements.during(lambda: client.get(f"/api/status/{task_id}").raise_for_status()) > 0


def test_a_fast_poller_waits_its_turn_then_gets_429_while_others_do_not(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    settings = gateway_settings.model_copy(
        update={"min_poll_interval_seconds": 0.2, "reads_per_second": 5, "reads_per_second_total": 1000}
    )
    tokens = {}
    for name in ("poller", "neighbour"):
        token, _ = credentials.issue(db, f"web:{name}", CredentialKind.API, timedelta(days=1))
        tokens[name] = {"Authorization": f"Bearer {token}"}
    with make_client(settings, db_url, queue_settings) as client:
        del client.headers["X-API-Key"]
        task = client.post("/api/chat", json={"text": "hi"}, headers=tokens["poller"]).json()["task_id"]
        mine = client.post("/api/chat", json={"text": "hi"}, headers=tokens["neighbour"]).json()["task_id"]
        codes: list[int] = []
        retry_after: list[str] = []
        lock = threading.Lock()

        def poll(headers: dict[str, str], task_id: str) -> None:
            response = client.get(f"/api/status/{task_id}", headers=headers)
            with lock:
                codes.append(response.status_code)
                retry_after.append(response.headers.get("Retry-After", ""))

        threads = [threading.Thread(target=poll, args=(tokens["poller"], task)) for _ in range(40)]
        for thread in threads:
            thread.start()
        # Meanwhile a well-behaved neighbour and a long poll of the poller itself are not limited.
        neighbour = client.get(f"/api/status/{mine}", headers=tokens["neighbour"])
        tag = neighbour.headers["ETag"]
        long_poll = client.get(
            f"/api/status/{mine}", params={"wait": 0.2}, headers={**tokens["neighbour"], "If-None-Match": tag}
        )
        for thread in threads:
            thread.join()

    assert neighbour.status_code == 200 and long_poll.status_code == 304
    # A burst of 10 at once, a few more held for their turn, the rest told to come back later.
    assert 10 <= codes.count(200) < 40
    assert codes.count(429) == 40 - codes.count(200)
    assert all(
        after.isdigit() and int(after) >= 1
        for code, after in zip(codes, retry_after, strict=True)
        if code == 429
    )


def test_plain_polls_of_one_task_are_spaced_and_budgets_refill() -> None:
    now = [100.0]
    pacer = Pacer(poll_interval=0.25, per_second=2, total_per_second=100, clock=lambda: now[0])
    assert pacer.poll_delay("a", "t1") == 0
    assert pacer.poll_delay("a", "t1") == pytest.approx(0.25)  # held until its interval has passed
    assert pacer.poll_delay("a", "t2") == 0  # another task, or
    assert pacer.poll_delay("b", "t1") == 0  # another client, is not held
    now[0] += 1
    assert pacer.poll_delay("a", "t1") == 0

    async def burst(client: str, count: int) -> list[BaseException | None]:
        return await asyncio.gather(*(pacer.read(client) for _ in range(count)), return_exceptions=True)

    # Twice the rate at once, two more held for their turn (up to a second), the next one refused.
    outcomes = asyncio.run(burst("a", 7))
    assert outcomes[:6] == [None] * 6
    assert isinstance(outcomes[6], RateLimited) and outcomes[6].retry_after == 2
    assert asyncio.run(burst("b", 1)) == [None]  # another client has a budget of its own
    now[0] += 10
    assert asyncio.run(burst("a", 4)) == [None] * 4  # and the budget refills


def test_long_poll_headers_do_not_exempt_other_reads_from_pacing(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    """Only the status route long-polls: `If-None-Match` and `?wait=` on an export are paced as the
    plain read it is (eight at once, against a budget of one a second: some wait or are refused)."""
    settings = gateway_settings.model_copy(update={"reads_per_second": 1, "reads_per_second_total": 1000})
    token, _ = credentials.issue(db, "web:exporter", CredentialKind.API, timedelta(days=1))
    disguised = {"Authorization": f"Bearer {token}", "If-None-Match": "x"}
    operator = {"X-API-Key": API_KEY}

    def paced(client: TestClient) -> int:
        text = client.get("/metrics", headers=operator).text
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith('ai_assistant_paced_requests_total{kind="read_')
        )

    with make_client(settings, db_url, queue_settings) as client:
        del client.headers["X-API-Key"]
        before = paced(client)
        codes: list[int] = []

        def export() -> None:
            response = client.get("/api/users/web:exporter/export", params={"wait": 1}, headers=disguised)
            codes.append(response.status_code)

        threads = [threading.Thread(target=export) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = paced(client)
    assert set(codes) <= {200, 429} and 200 in codes
    assert after - before >= 1


def test_credentials_nobody_holds_are_paced_by_address_before_the_database_is_asked(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, statements: Statements
) -> None:
    """Each unknown token costs a database read: one address guessing is paced as one reader (one a
    second here, bursts of two), so of a dozen guesses at once some are refused unread, 429; and
    /health, public and read from the database, is paced by address too."""
    settings = gateway_settings.model_copy(update={"reads_per_second": 1, "reads_per_second_total": 1000})

    def at_once(client: TestClient, path: str, headers: Callable[[int], dict[str, str]]) -> list[int]:
        codes: list[int] = []

        def get(n: int) -> None:
            codes.append(client.get(path, headers=headers(n)).status_code)

        threads = [threading.Thread(target=get, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return codes

    with make_client(settings, db_url, queue_settings) as client:
        del client.headers["X-API-Key"]
        one = statements.during(lambda: client.get("/api/me", headers={"Authorization": "Bearer aat_first"}))
        guesses: list[int] = []
        reads = statements.during(
            lambda: guesses.extend(
                at_once(client, "/api/me", lambda n: {"Authorization": f"Bearer aat_guess{n}"})
            )
        )
    # A new gateway, its budgets full: /health alone.
    with make_client(settings, db_url, queue_settings) as client:
        health = at_once(client, "/health", lambda n: {})
    assert one > 0 and set(guesses) == {401, 429}
    # Only the guesses let through were looked up.
    assert reads <= one * guesses.count(401)
    assert set(health) == {200, 429}


def test_writes_have_a_budget_per_person_refused_at_once_beyond_it() -> None:
    now = [0.0]
    pacer = Pacer(
        poll_interval=0, per_second=100, total_per_second=1000, writes_per_minute=60, clock=lambda: now[0]
    )
    for _ in range(12):  # a burst of a fifth of a minute's budget
        pacer.write("web:a")
    with pytest.raises(RateLimited) as refused:
        pacer.write("web:a")
    assert refused.value.retry_after == 1 and pacer.writes_refused == 1
    pacer.write("web:b")  # each person has their own
    now[0] += 3
    for _ in range(3):  # one a second comes back
        pacer.write("web:a")
    with pytest.raises(RateLimited):
        pacer.write("web:a")


def test_the_write_budget_never_undercuts_the_message_rate_limit(gateway_settings: GatewaySettings) -> None:
    from api.auth import Guard

    def budget(writes: int, messages: int) -> float:
        settings = gateway_settings.model_copy(
            update={"writes_per_minute": writes, "rate_limit_per_minute": messages}
        )
        return Guard(lambda *_: None, settings).pacer.writes_per_second * 60  # type: ignore[arg-type]

    assert budget(60, 30) == 60
    assert budget(60, 120) == 120  # an operator who allows more messages gets them


def test_a_person_cannot_pile_up_rows_with_writes_and_sign_in_guesses_are_paced_by_address(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    """With one write a minute, a token's second new conversation is refused 429 with Retry-After and
    adds no row; another person, the operator and every read go on; sign-in attempts from one address
    share a budget, so a second guessed link is refused before it is looked up."""
    settings = gateway_settings.model_copy(update={"writes_per_minute": 1, "rate_limit_per_minute": 1})

    def bearer(user_id: str) -> dict[str, str]:
        token, _ = credentials.issue(db, user_id, CredentialKind.API, timedelta(days=1))
        return {"Authorization": f"Bearer {token}"}

    alice, bob = bearer("web:alice"), bearer("web:bob")
    with make_client(settings, db_url, queue_settings) as client:
        del client.headers["X-API-Key"]
        made = [client.post("/api/conversations", json={}, headers=alice) for _ in range(5)]
        assert [r.status_code for r in made] == [201, 429, 429, 429, 429]
        assert made[1].json()["code"] == "rate_limit_exceeded"
        assert int(made[1].headers["Retry-After"]) >= 1
        # Refused before its body was read: the connection cannot carry another request.
        assert made[1].headers["Connection"] == "close"
        listed = client.get("/api/users/web:alice/conversations", headers=alice)
        assert listed.status_code == 200 and len(listed.json()) == 1
        assert client.post("/api/conversations", json={}, headers=bob).status_code == 201
        operator = {"X-API-Key": API_KEY}
        for _ in range(3):
            assert (
                client.post("/api/conversations", json={"user_id": "web:carol"}, headers=operator).status_code
                == 201
            )
        guesses = [
            client.post("/api/session", json={"invite": f"aai_guess{n}"}).status_code for n in range(3)
        ]
        assert guesses[0] in (400, 401, 404) and guesses[1:] == [429, 429]
        metrics = client.get("/metrics", headers=operator).text
    assert 'ai_assistant_paced_requests_total{kind="write_refused"} 6' in metrics
