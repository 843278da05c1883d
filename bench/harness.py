"""What every benchmark shares: the stack under test on loopback, a client that follows answers, figures."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.config import ModelSettings
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


# --- the baseline of the pipeline: llama-cpp-python called directly ----------------------------


class DirectModel:
    """The same model, prompts, threads and sampling, without the pipeline around it."""

    def __init__(self, model: Path = MODEL, max_tokens: int = MAX_TOKENS) -> None:
        from worker.llm import LlamaChatModel

        settings = ModelSettings(
            _env_file=None, n_threads=int(THREADS), seed=1, temperature=0, max_tokens=max_tokens
        )
        self.model = LlamaChatModel(model, settings)
        self.system = settings.system_prompt
        self.max_tokens = max_tokens

    def first_token_from_scratch(self, turns: list[tuple[str, str]], text: str) -> float:
        """Seconds to the first token of `text` after `turns`, with nothing reused from earlier."""
        from worker.llm import Sampling

        messages = [{"role": "system", "content": self.system}]
        for question, answer in turns:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        rendered = self.model.render_chat([*messages, {"role": "user", "content": text}])
        # Forget every computed context, so no prefix of an earlier prompt is reused.
        self.model.engine.clear_cache()
        started = time.perf_counter()
        for _ in self.model.generate(rendered, 1, lambda: False, Sampling(temperature=0, top_p=0.9)):
            break
        return time.perf_counter() - started

    def run(self, text: str) -> tuple[float, float]:
        """(tokens per second, seconds to first token), tokens counted as the worker counts them."""
        from worker.llm import Sampling

        rendered = self.model.render_chat(
            [{"role": "system", "content": self.system}, {"role": "user", "content": text}]
        )
        count = 0

        def tick() -> bool:
            nonlocal count
            count += 1
            return False

        started = time.perf_counter()
        first = None
        for _ in self.model.generate(rendered, self.max_tokens, tick, Sampling(temperature=0, top_p=0.9)):
            first = first or time.perf_counter() - started
        elapsed = time.perf_counter() - started
        return count / elapsed, first or elapsed


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


@dataclass
class RunningStack:
    api: str  # the gateway's address
    key: str  # the operator's API_KEY, as `make run` generated it into .env
    process: subprocess.Popen[bytes]  # `python -m stack`: its children are the stack's processes


@contextmanager
def stack_as_run(workdir: Path, **settings: str) -> Iterator[RunningStack]:
    """`python -m stack`, what `make run` runs, in `workdir` on free ports: its own Redis (with a
    password), migrations, the gateway with its access log, the worker, rq-dashboard and, with
    TELEGRAM_BOT_TOKEN in `settings`, the bot; its log level and limits are the defaults unless
    `settings` (environment variables) say otherwise. The secrets it generates go into workdir/.env.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        # The models `make bench` fetched, speech included, are the project's.
        MODELS_DIR=str(ROOT / "data" / "models"),
        API_PORT=str(api_port),
        DASHBOARD_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
        **settings,
    )
    # The stack's own output is kept in the scratch folder's log, shown when it does not come up.
    log_path = workdir / "stack.log"
    with open(log_path, "wb") as log:
        process = bound_popen(
            [sys.executable, "-m", "stack"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            api = f"http://127.0.0.1:{api_port}"
            deadline = time.monotonic() + 300  # a 1.5B model takes a while to load
            while True:
                try:
                    if httpx.get(f"{api}/health", timeout=2).json().get("workers"):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    said = log_path.read_text(errors="replace")[-3000:]
                    raise TimeoutError(f"the stack did not come up:\n{said}")
                time.sleep(0.3)
            key = next(
                line.split("=", 1)[1]
                for line in (workdir / ".env").read_text().splitlines()
                if line.startswith("API_KEY=")
            )
            yield RunningStack(api, key, process)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


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


def ask(api: str, text: str, user: str, key: str = KEY) -> dict[str, Any]:
    """Send one message and follow it as a prompt client does: a long poll on its status.

    Returns the task's final status plus client-side timings. One HTTP client, created once: a new
    client per request costs tens of milliseconds of set-up that would be wrongly counted as the
    pipeline's. The long poll (ETag + `wait`) answers as soon as the worker announces a change.
    """
    started = time.perf_counter()
    auth = {"X-API-Key": key}
    task_id = http_client.post(f"{api}/api/chat", json={"user_id": user, "text": text}, headers=auth).json()[
        "task_id"
    ]
    first_text = None
    tag = None
    while True:
        headers = auth | ({"If-None-Match": tag} if tag else {})
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
