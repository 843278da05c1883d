"""Resident memory of each part of the stack with the default model, after it has answered.

Run: `.venv/bin/python -m bench.memory` (starts `python -m stack` in a scratch folder on free ports).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from stack.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PARTS = {
    "redis-server": "Redis",
    "uvicorn": "gateway",
    "-m worker": "worker",
    "stack.dashboard": "rq-dashboard",
    "-m bot": "bot",
}


def _part(process: psutil.Process) -> str | None:
    line = " ".join(process.cmdline())
    return next((name for key, name in PARTS.items() if key in line), None)


def measure(messages: int = 5) -> dict[str, float]:
    # The bot runs too, against a stand-in Telegram on loopback (no real bot token needed).
    from fakes.telegram import FakeTelegram

    telegram = FakeTelegram()
    telegram.start()
    try:
        return _measure(messages, telegram.base_url)
    finally:
        telegram.stop()


def _measure(messages: int, telegram_api: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir:
        api_port = free_port()
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            MODEL_PATH=str(MODEL),
            API_PORT=str(api_port),
            DASHBOARD_PORT=str(free_port()),
            EMBEDDED_REDIS_PORT=str(free_port()),
            LOG_LEVEL="WARNING",
            TELEGRAM_BOT_TOKEN="4242:BENCH",
            TELEGRAM_API_BASE=telegram_api,
            # One user sends every message at once: the per-person cap is not what this measures.
            MAX_ACTIVE_PER_USER="1000",
        )
        stack = subprocess.Popen(
            [sys.executable, "-m", "stack"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            api = f"http://127.0.0.1:{api_port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{api}/health", timeout=2).json().get("workers"):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the stack did not come up")
                time.sleep(0.3)
            key = next(
                line.split("=", 1)[1]
                for line in (Path(workdir) / ".env").read_text().splitlines()
                if line.startswith("API_KEY=")
            )
            headers = {"X-API-Key": key}
            ids = [
                httpx.post(
                    f"{api}/api/chat",
                    json={"user_id": "bench", "text": f"Tell me a fact, number {n}."},
                    headers=headers,
                ).json()["task_id"]
                for n in range(messages)
            ]
            for task_id in ids:
                while httpx.get(f"{api}/api/status/{task_id}", headers=headers).json()["status"] not in (
                    "finished",
                    "failed",
                ):
                    time.sleep(0.2)
            usage: dict[str, float] = {}
            for child in psutil.Process(stack.pid).children(recursive=True):
                part = _part(child)
                if part:
                    usage[part] = usage.get(part, 0.0) + child.memory_info().rss / 2**20
            return usage
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(timeout=60)


def main() -> None:
    usage = measure()
    print("| part | resident memory (MB) |\n|---|---|")
    for part, mb in sorted(usage.items()):
        print(f"| {part} | {mb:.0f} |")
    print(f"| **whole stack** | **{sum(usage.values()):.0f}** |")


if __name__ == "__main__":
    main()
