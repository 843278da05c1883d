"""What every benchmark shares: the stack under test on loopback, a client that follows answers, figures."""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.migrate import upgrade
from stack.lifeline import bound_popen
from stack.redis_server import free_port, start_redis

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
KEY = "bench-key-0123456789abcdef"
THREADS = str(os.cpu_count() or 2)
PROMPTS = [
    "Explain in two sentences why the sky is blue.",
    "Write a short poem about a cat.",
    "List three uses of a paperclip.",
    "What is the capital of Italy, and what is it known for?",
    "Give me a tip for learning to cook.",
]
MAX_TOKENS = 64


@dataclass
class Figure:
    name: str
    ours: list[float]
    baseline: list[float]
    unit: str
    target: str
    ratio_note: str
    passed: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Whether ours[i] and baseline[i] were measured back to back, on the same input.
    paired: bool = False

    @property
    def ratio(self) -> float:
        """Ours against the baseline. For paired samples, the median of the pairs' own ratios: the
        shared machine's speed drifts (two-fold within a run), and each pair meets the same drift."""
        if self.paired:
            return statistics.median(o / b for o, b in zip(self.ours, self.baseline, strict=True))
        return statistics.median(self.ours) / statistics.median(self.baseline)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}–{max(values):.3g})"


def table_rows(figures: list[Figure]) -> list[str]:
    """The figures as rows of the results table, then a line for each one's extra figures."""
    lines = []
    for f in figures:
        met = {True: "yes", False: "**no**", None: "—"}[f.passed]
        ours, ratio = f"{spread(f.ours)} {f.unit}", f"{f.ratio:.2f} ({f.ratio_note})"
        lines.append("| " + " | ".join([f.name, ours, spread(f.baseline), ratio, f.target, met]) + " |")
    lines.append("")
    for f in figures:
        if f.extra:
            lines.append(f"- {f.name}: " + ", ".join(f"{k} {v}" for k, v in f.extra.items()))
    return lines


# --- the stack under test ----------------------------------------------------------------------


@contextmanager
def stack(workdir: Path, *, with_worker: bool = True, **settings: str) -> Iterator[str]:
    """Redis, a migrated SQLite database, the gateway (uvicorn) and one worker with the real model.

    `settings` are extra environment variables for both (PARALLEL="4", MAX_TOKENS="96", ...)."""
    workdir.mkdir(parents=True, exist_ok=True)
    redis_port, api_port = free_port(), free_port()
    redis = start_redis(redis_port, workdir / "redis")
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(db_url)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DATABASE_URL=db_url,
        API_KEY=KEY,
        MODEL_PATH=str(MODEL),
        MODELS_DIR=str(ROOT / "data" / "models"),  # the speech models `make bench` fetched
        N_THREADS=THREADS,
        TEMPERATURE="0",
        SEED="1",
        MAX_TOKENS=str(MAX_TOKENS),
        MAX_QUEUE_LENGTH="100000",
        MAX_ACTIVE_PER_USER="1000",
        LOG_LEVEL="WARNING",
    )
    env.update(settings)
    gateway = bound_popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.main:create_app",
            "--port",
            str(api_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
        env=env,
    )
    processes = [gateway]
    if with_worker:
        processes.append(bound_popen([sys.executable, "-m", "worker"], cwd=workdir, env=env))
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_ready(
            lambda: httpx.get(f"{api}/health", timeout=2).json().get("workers", 0) >= int(with_worker), 120
        )
        yield api
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)


def wait_ready(ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError("the stack did not come up")


http_client = httpx.Client(headers={"X-API-Key": KEY}, timeout=60)


def ask(api: str, text: str, user: str) -> dict[str, Any]:
    """Send one message and follow it as a prompt client does: a long poll on its status.

    Returns the task's final status plus client-side timings. One HTTP client, created once: a new
    client per request costs tens of milliseconds of set-up that would be wrongly counted as the
    pipeline's. The long poll (ETag + `wait`) answers as soon as the worker announces a change.
    """
    started = time.perf_counter()
    task_id = http_client.post(f"{api}/api/chat", json={"user_id": user, "text": text}).json()["task_id"]
    first_text = None
    tag = None
    while True:
        headers: dict[str, str] = {"If-None-Match": tag} if tag else {}
        response = http_client.get(f"{api}/api/status/{task_id}", headers=headers, params={"wait": 30})
        now = time.perf_counter()
        if response.status_code == 304:
            continue
        response.raise_for_status()
        status = response.json()
        tag = response.headers["ETag"]
        if first_text is None and (status["partial_text"] or status["answer"]):
            first_text = now - started
        if status["status"] in ("finished", "failed", "canceled"):
            status["client_total"] = now - started
            status["client_first_text"] = first_text
            result: dict[str, Any] = status
            return result
