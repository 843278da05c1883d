"""Resident memory of each part of the stack with the default model, after it has answered text,
then again after it has also transcribed voice notes (the speech model is loaded by the first).

Run: `.venv/bin/python -m bench.memory [model.gguf [VAR=value …]]` (starts `python -m stack` in a
scratch folder on free ports).
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

from stack.lifeline import bound_popen
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


def measure(
    model: Path = MODEL, settings: dict[str, str] | None = None, messages: int = 5
) -> tuple[dict[str, float], dict[str, float]]:
    """(memory after text answers, memory after voice notes too), by part, in MB, with `model` and
    extra `settings` (environment variables: PARALLEL, KV_CACHE_TYPE, …)."""
    # The bot runs too, against a stand-in Telegram on loopback (no real bot token needed).
    from fakes.telegram import FakeTelegram

    telegram = FakeTelegram()
    telegram.start()
    try:
        return _measure(model, messages, telegram.base_url, settings or {})
    finally:
        telegram.stop()


def _usage(stack: subprocess.Popen[bytes]) -> dict[str, float]:
    usage: dict[str, float] = {}
    for child in psutil.Process(stack.pid).children(recursive=True):
        part = _part(child)
        if part:
            usage[part] = usage.get(part, 0.0) + child.memory_info().rss / 2**20
    return usage


def _wait(api: str, headers: dict[str, str], ids: list[str]) -> None:
    for task_id in ids:
        while httpx.get(f"{api}/api/status/{task_id}", headers=headers).json()["status"] not in (
            "finished",
            "failed",
        ):
            time.sleep(0.2)


def _measure(
    model: Path, messages: int, telegram_api: str, settings: dict[str, str]
) -> tuple[dict[str, float], dict[str, float]]:
    from fakes import speech

    with tempfile.TemporaryDirectory() as workdir:
        api_port = free_port()
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            MODEL_PATH=str(model),
            # The speech model too is the one kept in the project's data/models.
            MODELS_DIR=str(ROOT / "data" / "models"),
            API_PORT=str(api_port),
            DASHBOARD_PORT=str(free_port()),
            EMBEDDED_REDIS_PORT=str(free_port()),
            LOG_LEVEL="WARNING",
            TELEGRAM_BOT_TOKEN="4242:BENCH",
            TELEGRAM_API_BASE=telegram_api,
            # One user sends every message at once: the per-person cap is not what this measures.
            MAX_ACTIVE_PER_USER="1000",
            **settings,
        )
        # The stack's own output is kept in the scratch folder's log, shown when it does not come up.
        log_path = Path(workdir) / "stack.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the stack
        stack = bound_popen(
            [sys.executable, "-m", "stack"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
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
                if time.monotonic() > deadline or stack.poll() is not None:
                    said = log_path.read_text(errors="replace")[-3000:]
                    raise TimeoutError(f"the stack did not come up:\n{said}")
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
                    # Several people: their conversations wait their turn, as on a real box.
                    json={"user_id": f"bench-{n}", "text": f"Tell me a fact, number {n}."},
                    headers=headers,
                ).json()["task_id"]
                for n in range(messages)
            ]
            _wait(api, headers, ids)
            text_only = _usage(stack)
            note = speech.speak("Tell me a fact about the moon, please, and make it a short one.")
            ids = [
                httpx.post(
                    f"{api}/api/chat/voice",
                    data={"user_id": "bench"},
                    files={"file": ("note.ogg", note, "audio/ogg")},
                    headers=headers,
                ).json()["task_id"]
                for _ in range(2)
            ]
            _wait(api, headers, ids)
            return text_only, _usage(stack)
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(timeout=60)
            log.close()


def main() -> None:
    model = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else MODEL
    settings = dict(arg.split("=", 1) for arg in sys.argv[2:])
    text_only, with_voice = measure(model, settings)
    print("| part | resident memory (MB) | after voice notes (MB) |\n|---|---|---|")
    for part, mb in sorted(text_only.items()):
        print(f"| {part} | {mb:.0f} | {with_voice.get(part, 0):.0f} |")
    print(f"| **whole stack** | **{sum(text_only.values()):.0f}** | **{sum(with_voice.values()):.0f}** |")


if __name__ == "__main__":
    main()
