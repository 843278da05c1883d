"""Noisy neighbours: the worker's output while other clients keep the gateway busy, against calm.

On a 2-core box the gateway shares the cores with the model. Each figure pairs a calm run with a
noisy one in the same stack, back to back, and compares the worker's total output (tokens over
the time from the first answer's start to the last one's end):

- (a) one client asking for a status as fast as it can over one keep-alive connection (no `wait`);
- (b) 50 clients posting messages as fast as they can (the queue is kept short: most get 503);
- (c) 20 answers at once, each followed by its own long poll, as the bot follows answers.

And the choice of `N_THREADS` on this box: llama.cpp's threads wait for each other at every step,
so one taken by the gateway stalls the rest. Two stacks side by side, one with a thread per core
and one leaving a core free, each calm and under (c), run by turns so that both meet the same drift.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import KEY, PROMPTS, THREADS, Figure, ask, http_client, stack, wait_ready

FLOOD_SECONDS = 4.0


def _output(statuses: list[dict[str, Any]]) -> float:
    """Tokens per second the worker wrote for these answers, over the span they were written in."""
    began = min(datetime.fromisoformat(s["started_at"]) for s in statuses)
    ended = max(datetime.fromisoformat(s["finished_at"]) for s in statuses)
    tokens = sum(s["usage"]["completion_tokens"] or 0 for s in statuses)
    return tokens / max((ended - began).total_seconds(), 1e-6)


def _followed(api: str, count: int, tag: str) -> list[dict[str, Any]]:
    """`count` answers at once, each followed by a long poll of its own (the bot's way)."""
    results: list[dict[str, Any]] = [{} for _ in range(count)]

    def one(n: int) -> None:
        results[n] = ask(api, PROMPTS[n % len(PROMPTS)], f"{tag}-{n}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _post(api: str, count: int, tag: str) -> list[str]:
    return [
        http_client.post(f"{api}/api/chat", json={"user_id": f"{tag}-{n}", "text": PROMPTS[n % len(PROMPTS)]})
        .raise_for_status()
        .json()["task_id"]
        for n in range(count)
    ]


def _finals(api: str, ids: list[str]) -> list[dict[str, Any]]:
    """The answers once all are written, looking a few times a second (no one follows them)."""
    final: dict[str, dict[str, Any]] = {}

    def done() -> bool:
        # One look per round, at the first answer not yet known to be written: a polite client.
        waiting = [task_id for task_id in ids if task_id not in final]
        if waiting:
            status = http_client.get(f"{api}/api/status/{waiting[0]}").raise_for_status().json()
            if status["status"] in ("finished", "failed", "canceled"):
                final[waiting[0]] = status
        return len(final) == len(ids)

    wait_ready(done, 600)
    return [final[task_id] for task_id in ids]


def _unfollowed(api: str, count: int, tag: str) -> list[dict[str, Any]]:
    """`count` answers at once, with nobody watching until they are written."""
    return _finals(api, _post(api, count, tag))


def _drain(api: str) -> None:
    def idle() -> bool:
        system = http_client.get(f"{api}/api/system").json()
        return bool(system["queued"] == 0 and system["generating"] == 0)

    wait_ready(idle, 600)


@contextmanager
def _in_background(noise: Callable[[threading.Event], None]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=noise, args=(stop,))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _poller(api: str, task_id: str, counted: list[int]) -> Callable[[threading.Event], None]:
    def poll(stop: threading.Event) -> None:
        with httpx.Client(headers={"X-API-Key": KEY}, timeout=30) as client:
            while not stop.is_set():
                client.get(f"{api}/api/status/{task_id}")
                counted[0] += 1

    return poll


def _flood(api: str) -> Callable[[threading.Event], None]:
    async def clients(stop: threading.Event) -> None:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=30, limits=limits) as http:

            async def sender(n: int) -> None:
                i = 0
                while not stop.is_set():
                    await http.post(f"{api}/api/chat", json={"user_id": f"flood-{n}-{i}", "text": "hello"})
                    i += 1

            await asyncio.gather(*(sender(n) for n in range(50)))

    return lambda stop: asyncio.run(clients(stop))


def figures(workdir: Path, runs: int) -> list[Figure]:
    calm_a, poll_a, calm_b, flood_b, calm_c, bot_c = ([] for _ in range(6))
    polls: list[int] = [0]
    with stack(workdir / "polls", PARALLEL="4") as api:
        _followed(api, 4, "warm-up")
        finished = _followed(api, 1, "polled")[0]["task_id"]
        for run in range(runs):
            calm_a.append(_output(_followed(api, 4, f"calm-a{run}")))
            with _in_background(_poller(api, finished, polls)):
                poll_a.append(_output(_followed(api, 4, f"poll-a{run}")))
            calm_c.append(_output(_unfollowed(api, 20, f"calm-c{run}")))
            bot_c.append(_output(_followed(api, 20, f"bot-c{run}")))
    # A short queue: the flood's messages are mostly refused, and the few taken drain quickly.
    with stack(workdir / "flood", PARALLEL="4", MAX_QUEUE_LENGTH="8") as api:
        _followed(api, 4, "warm-up")
        for run in range(runs):
            calm_b.append(_output(_unfollowed(api, 4, f"calm-b{run}")))
            ids = _post(api, 4, f"flood-b{run}")  # taken before the flood fills the short queue
            with _in_background(_flood(api)):
                flood_b.append(_output(_finals(api, ids)))
            _drain(api)
    return [
        _figure("(a) one client polling a status as fast as it can", poll_a, calm_a, 0.8, extra=polls),
        _figure("(b) 50 clients posting messages as fast as they can", flood_b, calm_b, None),
        _figure("(c) 20 answers followed at once by long polls (the bot's way)", bot_c, calm_c, 0.8),
    ]


def thread_counts(workdir: Path, runs: int) -> list[Figure]:
    """The worker's output with a thread per core against one core left free, calm and under (c)."""
    cores = int(THREADS)
    if cores < 2:
        return []
    calm: dict[int, list[float]] = {cores: [], cores - 1: []}
    busy: dict[int, list[float]] = {cores: [], cores - 1: []}
    with (
        stack(workdir / "all-cores", PARALLEL="4", N_THREADS=str(cores)) as api_all,
        stack(workdir / "one-free", PARALLEL="4", N_THREADS=str(cores - 1)) as api_free,
    ):
        apis = {cores: api_all, cores - 1: api_free}
        for threads, api in apis.items():
            _followed(api, 4, f"warm-up-{threads}")
        for run in range(runs):
            for threads, api in apis.items():
                calm[threads].append(_output(_unfollowed(api, 4, f"calm-t{threads}-{run}")))
                busy[threads].append(_output(_followed(api, 20, f"bot-t{threads}-{run}")))
    return [
        Figure(
            f"Worker output with N_THREADS={cores - 1} (vs {cores}, all cores): {label}",
            values[cores - 1],
            values[cores],
            "tokens/s",
            "reported: the default (all cores) stays unless this is > 1",
            f"{cores - 1} ÷ {cores} threads",
            paired=True,
        )
        for label, values in (("calm, 4 answers", calm), ("20 answers followed by long polls", busy))
    ]


def _figure(
    name: str, noisy: list[float], calm: list[float], target: float | None, extra: list[int] | None = None
) -> Figure:
    ratio = Figure(name, noisy, calm, "tokens/s", "", "", paired=True).ratio
    return Figure(
        f"Worker output beside noise: {name} (vs calm)",
        noisy,
        calm,
        "tokens/s",
        f"≥ {target} of calm" if target else "reported",
        "noisy ÷ calm",
        passed=ratio >= target if target else None,
        paired=True,
        extra={"status requests answered": str(extra[0])} if extra else {},
    )


def status_read_cost(workdir: Path, requests: int = 300) -> Figure:
    """CPU time of the gateway's process per status request: an unchanged status served from memory
    against the same request read from the database (the entry dropped before each, as a change
    notice does). Measured in one process, gateway and client together."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from shared.config import DatabaseSettings, GatewaySettings, QueueSettings
    from shared.migrate import upgrade
    from stack.redis_server import free_port, start_redis

    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    redis = start_redis(port, workdir / "redis")
    db_url = f"sqlite:///{workdir / 'cost.db'}"
    upgrade(db_url)
    app = create_app(
        GatewaySettings(_env_file=None, api_key=KEY, min_poll_interval_seconds=0, reads_per_second=1e6),
        DatabaseSettings(_env_file=None, database_url=db_url),
        QueueSettings(_env_file=None, redis_url=f"redis://127.0.0.1:{port}/0"),
    )
    try:
        with TestClient(app, headers={"X-API-Key": KEY}) as client:
            task_id = client.post("/api/chat", json={"user_id": "cost", "text": "hello"}).json()["task_id"]
            changes = client.app_state["changes"]
            wait_ready(lambda: bool(changes.cache.enabled), 30)

            def cost(drop: bool) -> float:
                started = time.process_time()
                for _ in range(requests):
                    if drop:
                        changes.cache.changed(task_id)
                    client.get(f"/api/status/{task_id}").raise_for_status()
                return (time.process_time() - started) / requests * 1000

            cost(False)  # warm-up
            cached, read = [], []
            for _ in range(3):
                read.append(cost(True))
                cached.append(cost(False))
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    return Figure(
        "CPU per status request: unchanged, from memory (vs read from the database)",
        cached,
        read,
        "ms",
        "reported (small is good)",
        "memory ÷ database",
        paired=True,
    )
