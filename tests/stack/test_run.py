"""`python -m stack` (what `make run` runs): the whole assistant from an empty folder, twice."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from stack.lifeline import bound_popen
from stack.redis_server import free_port
from tests.conftest import MODELS, ROOT, TINY_MODEL, wait_for

pytestmark = pytest.mark.slow


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = {"api": free_port(), "dashboard": free_port(), "redis": free_port()}
        self.output = workdir / "stack.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("API_", "REDIS_", "MODEL_", "TELEGRAM_"))
        }
        env.update(
            PYTHONPATH=str(ROOT),
            MODEL_PATH=str(TINY_MODEL),
            # The speech model `make test-models` fetched: not a new download into the empty folder.
            MODELS_DIR=str(MODELS),
            MAX_TOKENS="24",
            API_PORT=str(self.ports["api"]),
            DASHBOARD_PORT=str(self.ports["dashboard"]),
            EMBEDDED_REDIS_PORT=str(self.ports["redis"]),
            **extra_env,
        )
        before = len(self.log()) if self.output.exists() else 0
        with open(self.output, "ab") as out:
            self.process = bound_popen(
                [sys.executable, "-m", "stack"],
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # This start's own banner: the log holds the earlier starts' too.
        wait_for(lambda: "Press Ctrl-C" in self.log()[before:], timeout=60, interval=0.2)

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def children(self) -> list[psutil.Process]:
        assert self.process is not None
        children: list[psutil.Process] = psutil.Process(self.process.pid).children()
        return children

    def workers(self) -> list[psutil.Process]:
        found = []
        for child in self.children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "worker" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def stop(self) -> int:
        assert self.process is not None
        children = self.children()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == [], f"left running: {alive}"
        return code


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not TINY_MODEL.is_file():
        pytest.fail(f"{TINY_MODEL} is missing: run `make model`")
    running = Stack(tmp_path)
    yield running
    if running.process and running.process.poll() is None:
        for child in running.children():
            child.kill()
        running.process.kill()
        running.process.wait()


def _env_value(workdir: Path, name: str) -> str:
    lines = (workdir / ".env").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith(f"{name}="))


def _api_key(workdir: Path) -> str:
    return _env_value(workdir, "API_KEY")


def _healthy(api: str) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = httpx.get(f"{api}/health", timeout=2).json()
    except httpx.HTTPError:
        return None
    return body if body.get("status") == "ok" and body.get("workers", 0) >= 1 else None


def test_make_run_serves_restarts_stops_and_reuses(stack: Stack) -> None:
    stack.start()
    key = _api_key(stack.workdir)
    assert len(key) >= 32
    log = stack.log()
    assert f"Gateway:      http://127.0.0.1:{stack.ports['api']}" in log
    assert f"rq-dashboard: http://127.0.0.1:{stack.ports['dashboard']}" in log
    assert "Set TELEGRAM_BOT_TOKEN" in log
    wait_for(lambda: _healthy(stack.api), timeout=60, interval=0.3)
    # The banner's link is the owner's one-time sign-in: no operator key in it, and it works once.
    link = re.search(r"Web chat: +(\S+)", log)
    assert link is not None and key not in log
    assert link.group(1).startswith(f"http://127.0.0.1:{stack.ports['api']}/#invite=")
    invite = link.group(1).split("#invite=", 1)[1]
    with httpx.Client(base_url=stack.api) as page:
        assert page.post("/api/session", json={"invite": invite}).status_code == 200
        assert page.get("/api/me").json()["user_id"] == "web:owner"
        assert page.get("/metrics").status_code == 403
    assert httpx.post(f"{stack.api}/api/session", json={"invite": invite}).status_code == 401

    headers = {"X-API-Key": key}
    task = httpx.post(
        f"{stack.api}/api/chat", json={"user_id": "me", "text": "Hello!"}, headers=headers
    ).json()

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{stack.api}/api/status/{task['task_id']}", headers=headers).json()
        return body if body["status"] == "finished" else None

    answer = wait_for(finished, timeout=60, interval=0.2)
    assert isinstance(answer, dict) and answer["answer"].strip()
    dashboard = f"http://127.0.0.1:{stack.ports['dashboard']}/"
    assert httpx.get(dashboard, timeout=5).status_code == 401
    password = _env_value(stack.workdir, "DASHBOARD_PASSWORD")
    assert httpx.get(dashboard, timeout=5, auth=("admin", password)).status_code == 200
    # Redis keeps an append-only file (one file in 6.x, a folder from 7.0 on) under data/.
    assert any((stack.workdir / "data" / "redis").glob("appendonly*"))
    # It refuses a client without the password, which no process shows on its command line.
    redis_password = _env_value(stack.workdir, "REDIS_PASSWORD")
    with socket.create_connection(("127.0.0.1", stack.ports["redis"]), timeout=5) as conn:
        conn.sendall(b"SET stolen 1\r\n")
        assert conn.recv(64).startswith(b"-NOAUTH")
    lines = [" ".join(p.cmdline()) for p in [psutil.Process(stack.process.pid), *stack.children()]]  # type: ignore[union-attr]
    assert not [line for line in lines if redis_password in line]
    assert redis_password not in stack.log()

    # A process that dies is started again.
    (worker,) = stack.workers()
    worker.kill()
    wait_for(lambda: [p for p in stack.workers() if p.pid != worker.pid], timeout=30, interval=0.2)
    assert "worker-1 exited" in stack.log()

    assert stack.stop() == 0

    # A second run reuses the key, the database and the queue's files; the owner has signed in, so
    # its banner (and the log that keeps it) holds no sign-in link.
    first_run = len(stack.log())
    stack.start()
    assert _api_key(stack.workdir) == key
    second_banner = stack.log()[first_run:]
    assert "you have signed in" in second_banner and "#invite=" not in second_banner
    wait_for(lambda: _healthy(stack.api), timeout=60, interval=0.3)
    again = httpx.get(f"{stack.api}/api/status/{task['task_id']}", headers=headers).json()
    assert again["answer"] == answer["answer"]
    started = time.monotonic()
    assert stack.stop() == 0
    assert time.monotonic() - started < 30


@pytest.fixture
def telegram() -> Iterator[Any]:
    from fakes.telegram import FakeTelegram

    fake = FakeTelegram()
    fake.start()
    yield fake
    fake.stop()


def _start_with_bot(stack: Stack, telegram: Any, **extra_env: str) -> list[str]:
    """`make run` with a bot token on a 1 GB box; the command lines of what it started."""
    stack.start(
        TELEGRAM_BOT_TOKEN="4242:TOKEN",
        TELEGRAM_API_BASE=telegram.base_url,
        TELEGRAM_ALLOWED_USERS="1001",
        MEMORY_MB="1000",
        **extra_env,
    )
    return [" ".join(child.cmdline()) for child in stack.children()]


def _bot_answers(telegram: Any) -> None:
    telegram.send_text("Hello! Who are you?", user_id=1001)
    answer = telegram.wait_for(lambda: [m for m in telegram.chat(1001) if m.reply_markup], timeout=90)[0]
    assert answer.text.strip()


def test_make_run_starts_the_bot_once_a_token_is_set_and_fits_a_small_box(
    stack: Stack, telegram: Any
) -> None:
    # A 1 GB box: the bot runs in the gateway's process, rq-dashboard is left out, both for the
    # memory they would take.
    commands = _start_with_bot(stack, telegram)
    assert "Telegram bot: on, in the gateway's process" in stack.log()
    assert "rq-dashboard: off" in stack.log()
    assert any("-m stack.gateway_and_bot" in command for command in commands)
    assert not any("-m bot" in command or "uvicorn" in command for command in commands)
    assert not any("stack.dashboard" in command for command in commands)
    # Each Python process keeps its freed memory in two glibc heaps, not one per thread.
    pythons = [child for child in stack.children() if "redis-server" not in child.cmdline()[0]]
    assert len(pythons) == 2  # the gateway with the bot, and the worker
    assert {child.environ().get("MALLOC_ARENA_MAX") for child in pythons} == {"2"}
    _bot_answers(telegram)
    assert stack.stop() == 0


def test_bot_in_gateway_false_gives_the_bot_a_process_of_its_own(stack: Stack, telegram: Any) -> None:
    commands = _start_with_bot(stack, telegram, BOT_IN_GATEWAY="false")
    assert "Telegram bot: on." in stack.log()
    assert any("-m bot" in command for command in commands)
    assert any("uvicorn" in command for command in commands)
    assert not any("stack.gateway_and_bot" in command for command in commands)
    _bot_answers(telegram)
    assert stack.stop() == 0
