"""Serving at the sizes people run, on the stack as people start it, beside llama.cpp's own tools.

For each model it is given: `python -m stack` (what `make run` runs, with its defaults: INFO logs and
the gateway's access log, rq-dashboard, a password on Redis, the per-person limits), each person
followed the way the bot follows an answer (its own GatewayClient: POST /api/chat, then long polls
on a kept-alive connection); and llama-server with as many slots as our worker has answers at once
(`-np 4`) and the same context per conversation, on the same file, threads and conversations. Beside
them, llama-bench's decode speed (tg128) and llama-batched-bench's total decode with 1, 4 and 8
sequences at once: what the model itself can give on this machine.

The figures, per model: total tokens/s with 1, 4 and 8 people, ours ÷ llama-server's in absolute
terms; the interleave penalty (the model's first token at turns 6 to 8 with 4 people, ÷ alone); the
first visible text when 8 send at once, ours ÷ llama-server's; single-person decode ÷ llama-bench
tg; one person's answer end to end ÷ the model called directly (llama-cpp-python, no pipeline);
turn 10's first token ÷ turn 1's; the memory of the whole stack beside llama-server's.

`python -m bench.run --only serving [--model NAME]` runs just these and writes
bench/serving-results.md. The targets hold at the large default (1.5B), where people need the speed.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import psutil

from bench.concurrency import (
    N_CTX,
    PARALLEL,
    SUBJECTS,
    Crowd,
    LlamaServer,
    Person,
    Turn,
    crowd,
    decode_pair,
    server_person,
)
from bench.harness import ROOT, THREADS, DirectModel, Figure, RunningStack, ask, stack_as_run, table_rows
from bench.memory import resident_mb, usage
from bot.gateway import GatewayClient
from shared.enums import FINAL_STATUSES, TaskStatus
from shared.presets import LARGE_DEFAULT, PRESETS, SMALL_DEFAULT

MODELS = ROOT / "data" / "models"
SIZES = ("smollm2-135m", SMALL_DEFAULT, LARGE_DEFAULT)
ANSWER_TOKENS = 96
TURNS = 8  # each person's conversation in a crowd
ALONE_TURNS = 10  # one person's conversation: its 10th turn against its 1st
CROWDS = (4, 8)
BURST = 8  # people sending their first message at the same moment
PAIRS = 3  # back-to-back pairs for the paired ratios (decode, end to end)
LATE = slice(5, 8)  # turns 6 to 8: where the history is long


@dataclass
class Side:
    """What one server gave on the workload."""

    alone: Crowd
    crowds: dict[int, Crowd]
    burst: Crowd
    memory_parts: dict[str, float]  # MB, by part

    @property
    def memory_mb(self) -> float:
        return sum(self.memory_parts.values())


def _late(c: Crowd) -> list[float]:
    return [t.first_token for person in c.turns for t in person[LATE]]


def our_person(running: RunningStack) -> Person:
    """A person on the stack, followed as the bot follows an answer."""

    def talk(questions: list[str], user: str) -> list[Turn]:
        return asyncio.run(_talk(running, questions, user))

    return talk


async def _talk(running: RunningStack, questions: list[str], user: str) -> list[Turn]:
    client = GatewayClient(running.api, running.key, timeout=30)
    turns = []
    try:
        for question in questions:
            started = time.perf_counter()
            accepted, _ = await client.chat(user, question, user, uuid.uuid4().hex, {})
            tag: str | None = None
            first: float | None = None
            while True:
                status, tag = await client.watch(accepted.task_id, tag, 30)
                if status is None:
                    continue
                now = time.perf_counter()
                if first is None and (status.partial_text or status.answer):
                    first = now - started
                if status.status in FINAL_STATUSES:
                    break
            if status.status != TaskStatus.FINISHED:
                raise RuntimeError(f"{user}: the answer {status.status}: {status.error}")
            used = status.usage
            turns.append(
                Turn(first or now - started, used.completion_tokens or 0, used.first_token_seconds or 0.0)
            )
    finally:
        await client.aclose()
    return turns


def _serve(person: Person, read_memory: Callable[[], dict[str, float]]) -> Side:
    """The workload, the same for both servers: one person alone, crowds, then a burst."""
    person(["Hello! Who are you?"], "warm-up")  # worded unlike the runs, so no run reuses its prompt
    # Runs 0 to 3 take subjects 0, 8-11, 16-23 and 24-31: no conversation starts as another did.
    alone = crowd(person, 1, ALONE_TURNS, 0)
    crowds = {size: crowd(person, size, TURNS, 1 + n) for n, size in enumerate(CROWDS)}
    burst = crowd(person, BURST, 1, 1 + len(CROWDS))
    return Side(alone, crowds, burst, read_memory())


def _end_to_end_pairs(running: RunningStack, model: Path) -> list[tuple[float, float]]:
    """One person's answer, POST to the last word, then the same question to the model alone."""
    direct = DirectModel(model, ANSWER_TOKENS)
    try:
        direct.run("warm up")
        pairs = []
        for n in range(PAIRS):
            question = f"Tell me about {SUBJECTS[-1 - n]} in a few sentences."
            status = ask(running.api, question, f"direct-{n}", running.key)
            ours = status["usage"]["completion_tokens"] / status["client_total"]
            pairs.append((ours, direct.run(question)[0]))
        return pairs
    finally:
        direct.model.close()


def batched_ceiling(tools: Path, model: Path) -> dict[int, float]:
    """llama-batched-bench: total decode tokens/s with 1, 4 and 8 sequences of a 128-token prompt."""
    out = subprocess.run(
        [str(tools / "llama-batched-bench"), "-m", str(model), "-t", THREADS, "-c", str(N_CTX * 8),
         "-npp", "128", "-ntg", str(ANSWER_TOKENS), "-npl", "1,4,8", "--output-format", "jsonl"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = (out.stdout + out.stderr).splitlines()  # its rows go through its log
    rows = [json.loads(line) for line in lines if line.startswith("{") and '"speed_tg"' in line]
    return {int(row["pl"]): float(row["speed_tg"]) for row in rows}


def measure(name: str, tools: Path, workdir: Path) -> list[Figure]:
    model = MODELS / PRESETS[name].file
    with stack_as_run(workdir / name, MODEL_PATH=str(model), MAX_TOKENS=str(ANSWER_TOKENS)) as running:
        ours = _serve(our_person(running), lambda: usage(running.process))
        decode = [decode_pair(running.api, tools, n, running.key, model) for n in range(PAIRS)]
        end_to_end = _end_to_end_pairs(running, model)
    server = LlamaServer(tools, model, slots=PARALLEL, context=N_CTX * PARALLEL)
    try:
        process = psutil.Process(server.process.pid)
        theirs = _serve(server_person(server.url), lambda: {"llama-server": resident_mb(process)})
    finally:
        server.stop()
    ceiling = batched_ceiling(tools, model)
    return figures(name, ours, theirs, decode, end_to_end, ceiling)


def figures(
    name: str,
    ours: Side,
    theirs: Side,
    decode: list[tuple[float, float]],
    end_to_end: list[tuple[float, float]],
    ceiling: dict[int, float],
) -> list[Figure]:
    large = name == LARGE_DEFAULT  # where the targets hold
    result = []
    for size, c in [(1, ours.alone), *ours.crowds.items()]:
        their = theirs.alone if size == 1 else theirs.crowds[size]
        total = Figure(
            f"Serving {name}: total tokens/s, {size} {'person' if size == 1 else 'people'} "
            "(stack vs llama-server -np 4)",
            [c.tokens_per_second],
            [their.tokens_per_second],
            "tokens/s",
            "≥ 1.0 of llama-server" if large and size == PARALLEL else "reported",
            "ours ÷ llama-server",
            extra={"llama-batched-bench decode": f"{ceiling[size]:.1f} tokens/s"} if size in ceiling else {},
        )
        if size > 1:
            gain = c.tokens_per_second / ours.alone.tokens_per_second
            their_gain = their.tokens_per_second / theirs.alone.tokens_per_second
            total.extra |= {"gain over 1 person: ours": f"{gain:.2f}", "llama-server's": f"{their_gain:.2f}"}
        if large and size == PARALLEL:
            total.passed = total.ratio >= 1.0
        result.append(total)
    penalty = Figure(
        f"Serving {name}: interleave penalty, {PARALLEL} people × {TURNS} turns "
        "(model's first token at turns 6–8, vs alone)",
        _late(ours.crowds[PARALLEL]),
        _late(ours.alone),
        "s",
        "≤ 1.3" if large else "reported",
        f"{PARALLEL} people ÷ 1",
        # The absolute figures beside the ratios: a side fast alone has the higher ratio to reach.
        extra={
            f"{PARALLEL} people, ours ÷ llama-server's": f"{_late_median(ours) / _late_median(theirs):.2f}",
            "llama-server's": f"{_penalty(theirs):.2f} ({_late_median(theirs):.3f} s with "
            f"{PARALLEL}, {median(_late(theirs.alone)):.3f} s alone)",
        },
    )
    if large:
        penalty.passed = penalty.ratio <= 1.3
    firsts = sorted(t.first_text for person in ours.burst.turns for t in person)
    their_firsts = sorted(t.first_text for person in theirs.burst.turns for t in person)
    burst = Figure(
        f"Serving {name}: first visible text, {BURST} people sending at once (stack vs llama-server)",
        firsts,
        their_firsts,
        "s",
        "p50 ≤ llama-server's" if large else "reported",
        "ours ÷ llama-server, p50",
        extra={"p95": f"{_p95(firsts):.2f} s", "llama-server's p95": f"{_p95(their_firsts):.2f} s"},
    )
    if large:
        burst.passed = burst.ratio <= 1.0
    speed = _paired(
        f"Serving {name}: single-person decode (worker vs llama-bench tg128)",
        decode,
        0.95 if large else None,
        "worker ÷ llama-bench",
    )
    whole = _paired(
        f"Serving {name}: one person's answer end to end (POST to last word vs the model called directly)",
        end_to_end,
        0.97 if large else None,
        "stack ÷ direct",
    )
    alone = ours.alone.turns[0]
    their_alone = theirs.alone.turns[0]
    depth = Figure(
        f"Serving {name}: the model's first token at turn {ALONE_TURNS} vs turn 1, one person",
        [alone[-1].first_token],
        [alone[0].first_token],
        "s",
        "reported (small is good)",
        f"turn {ALONE_TURNS} ÷ turn 1",
        extra={"llama-server's": f"{their_alone[-1].first_token / their_alone[0].first_token:.2f}"},
    )
    memory = Figure(
        f"Serving {name}: memory after {BURST} people (whole stack vs llama-server)",
        [ours.memory_mb],
        [theirs.memory_mb],
        "MB",
        "reported",
        "stack ÷ llama-server",
        extra={part: f"{mb:.0f} MB" for part, mb in sorted(ours.memory_parts.items())},
    )
    return [*result, penalty, burst, speed, whole, depth, memory]


def _paired(title: str, pairs: list[tuple[float, float]], bound: float | None, note: str) -> Figure:
    """Tokens/s measured back to back with a baseline, held to ≥ `bound` when one is given."""
    figure = Figure(
        title,
        [ours for ours, _ in pairs],
        [theirs for _, theirs in pairs],
        "tokens/s",
        f"≥ {bound}" if bound else "reported",
        f"{note}, median of paired runs",
        paired=True,
    )
    if bound:
        figure.passed = figure.ratio >= bound
    return figure


def _late_median(side: Side) -> float:
    return median(_late(side.crowds[PARALLEL]))


def _penalty(side: Side) -> float:
    return _late_median(side) / median(_late(side.alone))


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def report(figures: list[Figure], out: Path, names: list[str]) -> None:
    lines = [
        "## Serving at the sizes people run",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on 2 cores, {THREADS} threads, "
        f"greedy, {ANSWER_TOKENS} new tokens at most, models {', '.join(names)}: the stack as `make run` "
        "starts it, followed as the bot follows answers, beside llama-server -np 4 (same file, threads "
        f"and {N_CTX} tokens per conversation), llama-bench and llama-batched-bench, in the same run. "
        "One run per figure. The stack's memory is without the bot (no Telegram token here; "
        "models-results.md has it with the bot).",
        "",
        "| figure | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
        *table_rows(figures),
        "",
    ]
    out.write_text("\n".join(lines))
