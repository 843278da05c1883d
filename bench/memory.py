"""Resident memory of each part of the stack with the default model, after it has answered text
(one message long enough to fill a prompt step), then again after it has also transcribed voice
notes (the speech model is loaded by the first), and, if asked, once more after a document has
been read and asked about (the document embedder, where it is on, is loaded by the first).

Memory is each process's proportional set size (PSS): a page that several of the stack's processes
map (the Python binary, shared libraries) is counted once in all, as the box holds it once, where
summed RSS would count it in each process (~60 MB more for the five processes here).

Run: `.venv/bin/python -m bench.memory [model.gguf [VAR=value …]]` (starts `python -m stack` in a
scratch folder on free ports).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.harness import MODEL, stack_as_run

# ~1,000 tokens: more than two prompt steps at N_BATCH=512, well inside a 1,536-token context.
LONG_TEXT = " ".join(f"Fact {n}: the sea is wide and the sky is blue." for n in range(70))
PARTS = {
    "redis-server": "Redis",
    "uvicorn": "gateway",
    "-m worker": "worker",
    "stack.dashboard": "rq-dashboard",
    "-m bot": "bot",
    "stack.gateway_and_bot": "gateway and bot",
}


def _part(process: psutil.Process) -> str | None:
    line = " ".join(process.cmdline())
    return next((name for key, name in PARTS.items() if key in line), None)


Memory = dict[str, float]


def measure(
    model: Path | None = MODEL, settings: dict[str, str] | None = None, messages: int = 5
) -> tuple[Memory, Memory]:
    """(memory after text answers, memory after voice notes too), by part, in MB, with `model` (None:
    the default the stack picks, and its fit, for MEMORY_MB in `settings`) and extra `settings`
    (environment variables: PARALLEL, KV_CACHE_TYPE, …)."""
    text_only, with_voice, _ = measure_all(model, settings, messages, documents=False)
    return text_only, with_voice


def measure_all(
    model: Path | None = MODEL,
    settings: dict[str, str] | None = None,
    messages: int = 5,
    documents: bool = True,
) -> tuple[Memory, Memory, Memory | None]:
    """As `measure`, and then (with `documents`) the memory after a document was read and asked of."""
    # The bot runs too, against a stand-in Telegram on loopback (no real bot token needed).
    from fakes.telegram import FakeTelegram

    telegram = FakeTelegram()
    telegram.start()
    try:
        return _measure(model, messages, telegram.base_url, settings or {}, documents)
    finally:
        telegram.stop()


def resident_mb(process: psutil.Process) -> float:
    """What one process holds in memory, in MB, its shared pages split among those sharing them."""
    return float(process.memory_full_info().pss) / 2**20


def usage(stack: subprocess.Popen[bytes]) -> dict[str, float]:
    """Resident memory (PSS) of each part of the stack that `python -m stack` (`stack`) runs, in MB."""
    parts: dict[str, float] = {}
    for child in psutil.Process(stack.pid).children(recursive=True):
        part = _part(child)
        if part:
            parts[part] = parts.get(part, 0.0) + resident_mb(child)
    return parts


def _wait(api: str, headers: dict[str, str], ids: list[str]) -> None:
    for task_id in ids:
        while httpx.get(f"{api}/api/status/{task_id}", headers=headers).json()["status"] not in (
            "finished",
            "failed",
        ):
            time.sleep(0.2)


def _measure(
    model: Path | None, messages: int, telegram_api: str, settings: dict[str, str], documents: bool
) -> tuple[Memory, Memory, Memory | None]:
    from fakes import speech

    with (
        tempfile.TemporaryDirectory() as workdir,
        stack_as_run(
            Path(workdir),
            **({"MODEL_PATH": str(model)} if model else {}),
            LOG_LEVEL="WARNING",
            TELEGRAM_BOT_TOKEN="4242:BENCH",
            TELEGRAM_API_BASE=telegram_api,
            # One user sends every message at once: the per-person cap is not what this measures.
            MAX_ACTIVE_PER_USER="1000",
            **settings,
        ) as running,
    ):
        api, headers = running.api, {"X-API-Key": running.key}
        ids = [
            httpx.post(
                f"{api}/api/chat",
                # Several people: their conversations wait their turn, as on a real box.
                json={"user_id": f"bench-{n}", "text": f"Tell me a fact, number {n}."},
                headers=headers,
            ).json()["task_id"]
            for n in range(messages)
        ]
        # One long message: a prompt read in whole steps of N_BATCH tokens takes the scratch memory
        # that short ones never reach.
        ids.append(
            httpx.post(
                f"{api}/api/chat",
                json={"user_id": "bench-long", "text": "Summarize this: " + LONG_TEXT},
                headers=headers,
            ).json()["task_id"]
        )
        _wait(api, headers, ids)
        text_only = usage(running.process)
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
        with_voice = usage(running.process)
        if not documents:
            return text_only, with_voice, None
        _read_and_ask(api, headers)
        return text_only, with_voice, usage(running.process)


# A few pages of a lease, with the question asked of them.
LEASE = [
    "Арендатор вносит плату за квартиру до пятого числа каждого месяца. " * 8,
    "Домашних животных держать в квартире можно только с согласия собственника. " * 8,
    "Курение в квартире и на балконе запрещено. Гостям можно оставаться не дольше семи ночей. " * 8,
]


def _read_and_ask(api: str, headers: dict[str, str]) -> None:
    """Send a PDF, wait for its reading, then ask about it (its passages searched, by meaning too
    where the embedder is on, and read into the prompt)."""
    from fakes import documents

    sent = httpx.post(
        f"{api}/api/documents",
        data={"user_id": "bench-docs"},
        files={"file": ("lease.pdf", documents.pdf(LEASE), "application/pdf")},
        headers=headers,
    )
    sent.raise_for_status()
    document_id = sent.json()["document_id"]
    while httpx.get(
        f"{api}/api/documents/{document_id}", params={"user_id": "bench-docs"}, headers=headers
    ).json()["status"] not in (
        "finished",
        "failed",
    ):
        time.sleep(0.2)
    asked = httpx.post(
        f"{api}/api/chat", json={"user_id": "bench-docs", "text": "Можно ли жить с кошкой?"}, headers=headers
    )
    _wait(api, headers, [asked.json()["task_id"]])


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
