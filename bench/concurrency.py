"""Several people at once: our stack and llama.cpp's own server on the same conversations.

Each person holds an 8-turn conversation (greedy, answers capped at 96 tokens), sending the next
message when the last answer is in; 1, 4 and 8 people start together. Measured on both: the
model's time to the first token of each answer once it is being answered (turns 6 to 8, where the
history is long: what re-reading it would cost), the total output of all people together, and,
client-side, the first visible text when many send at once (waiting for a free slot included).
llama-server runs with 4 slots (`-np 4`), as our worker runs with PARALLEL=4, on the same model,
threads and context per conversation.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx

from bench.harness import KEY, MODEL, THREADS, Figure, ask, stack, wait_ready
from shared.config import ModelSettings
from stack.lifeline import bound_popen
from stack.redis_server import free_port

ANSWER_TOKENS = 96
PARALLEL = 4
DECODE_PAIRS = 7
N_CTX = 2048
SUBJECTS = [
    "the ocean", "forests", "the moon", "volcanoes", "honey bees", "deserts", "glaciers", "rivers",
    "owls", "bridges", "chess", "tea", "comets", "coral reefs", "wolves", "trains", "bread", "clouds",
    "maps", "violins", "salt", "ants", "lighthouses", "caves", "kites", "pianos", "maple trees",
    "whales", "windmills", "lanterns", "penguins", "canals",
]  # fmt: skip


@dataclass
class Turn:
    first_text: float  # client-side: sent → first visible text
    tokens: int
    first_token: float  # the model's: answering began → first token (no queue wait)


@dataclass
class Crowd:
    """What `people` people got, talking at once."""

    turns: list[list[Turn]]
    seconds: float

    def late_first_token(self, turns: int) -> list[float]:
        """The model's time to first token at the last three turns of every conversation."""
        return [t.first_token for person in self.turns for t in person[max(0, turns - 3) :]]

    @property
    def tokens_per_second(self) -> float:
        return sum(t.tokens for person in self.turns for t in person) / self.seconds


Person = Callable[[list[str], str], list[Turn]]


def _questions(subject: str, turns: int) -> list[str]:
    return [f"Tell me one more thing about {subject}, point {n + 1}." for n in range(turns)]


def crowd(person: Person, people: int, turns: int, run: int) -> Crowd:
    """`people` conversations at once, each on its own subject (none shares a prompt with another)."""
    results: list[list[Turn]] = [[] for _ in range(people)]
    start = threading.Barrier(people + 1)

    def talk(i: int) -> None:
        subject = SUBJECTS[(run * 8 + i) % len(SUBJECTS)]
        start.wait()
        results[i] = person(_questions(subject, turns), f"r{run}-p{people}-{i}")

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(people)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return Crowd(results, time.perf_counter() - began)


def our_person(api: str) -> Person:
    def talk(questions: list[str], user: str) -> list[Turn]:
        turns = []
        for question in questions:
            status = ask(api, question, user)
            usage = status["usage"]
            turns.append(
                Turn(status["client_first_text"], usage["completion_tokens"], usage["first_token_seconds"])
            )
        return turns

    return talk


def server_person(url: str) -> Person:
    system = ModelSettings(_env_file=None).system_prompt

    def talk(questions: list[str], _user: str) -> list[Turn]:
        messages = [{"role": "system", "content": system}]
        turns = []
        # A connection per request: llama-server may close an idle kept-alive one between turns.
        with httpx.Client(timeout=120, headers={"Connection": "close"}) as http:
            for question in questions:
                messages.append({"role": "user", "content": question})
                turn, answer = _server_turn(http, url, messages)
                messages.append({"role": "assistant", "content": answer})
                turns.append(turn)
        return turns

    return talk


def _server_turn(http: httpx.Client, url: str, messages: list[dict[str, str]]) -> tuple[Turn, str]:
    body = {
        "messages": messages,
        "max_tokens": ANSWER_TOKENS,
        "temperature": 0,
        "repeat_penalty": 1.1,  # our worker's default
        "repeat_last_n": 64,
        "cache_prompt": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first, text, tokens, prompt_seconds = None, "", 0, 0.0
    with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    first = first or time.perf_counter() - started
                    text += piece
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk.get("timings"):
                # Its own figure for reading this prompt: the time to the first token, once a slot
                # has taken the request (as our worker's first_token_seconds).
                prompt_seconds = chunk["timings"]["prompt_ms"] / 1000
    return Turn(first or time.perf_counter() - started, tokens, prompt_seconds), text


class LlamaServer:
    """llama.cpp's own server on loopback: by default as our worker runs (PARALLEL slots of N_CTX)."""

    def __init__(
        self,
        tools: Path,
        model: Path = MODEL,
        slots: int = PARALLEL,
        context: int = N_CTX * PARALLEL,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.process = bound_popen(
            [
                str(tools / "llama-server"), "-m", str(model), "-t", THREADS, "-np", str(slots),
                "-c", str(context), "--host", "127.0.0.1", "--port", str(self.port),
                # Enough HTTP threads for every person at once (the default follows the cores).
                "--threads-http", "16", *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        # A second model (a draft) takes longer to load.
        wait_ready(lambda: httpx.get(f"{self.url}/health", timeout=2).status_code == 200, 300)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def llama_bench_tg(tools: Path, model: Path = MODEL) -> float:
    """llama.cpp's own decode speed for `model` at this thread count (tg128), tokens/s."""
    out = subprocess.run(
        [str(tools / "llama-bench"), "-m", str(model), "-t", THREADS, "-p", "0", "-n", "128", "-r", "3",
         "-o", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(json.loads(out)[0]["avg_ts"])


def _measure(person: Person, sizes: tuple[int, ...], runs: int, turns: int) -> dict[int, list[Crowd]]:
    crowds: dict[int, list[Crowd]] = {size: [] for size in sizes}
    for run in range(runs):
        for size in sizes:
            crowds[size].append(crowd(person, size, turns, run))
    return crowds


def figures(workdir: Path, runs: int, turns: int, sizes: tuple[int, ...], tools: Path | None) -> list[Figure]:
    decode: list[tuple[float, float]] = []
    with stack(workdir, PARALLEL=str(PARALLEL), MAX_TOKENS=str(ANSWER_TOKENS), N_CTX=str(N_CTX)) as api:
        ask(api, "warm up", "warm")
        ours = _measure(our_person(api), sizes, runs, turns)
        burst = crowd(our_person(api), max(sizes), 1, runs + 1)
        if tools is not None:
            decode = [decode_pair(api, tools, n) for n in range(DECODE_PAIRS)]
    crowded = PARALLEL if PARALLEL in sizes else max(sizes)
    with stack(
        workdir / "q8_0",
        PARALLEL=str(PARALLEL),
        MAX_TOKENS=str(ANSWER_TOKENS),
        N_CTX=str(N_CTX),
        KV_CACHE_TYPE="q8_0",
    ) as api:
        ask(api, "warm up", "warm")
        quantized = _measure(our_person(api), (crowded,), runs, turns)[crowded]
    theirs: dict[int, list[Crowd]] = {}
    drift = divergence()
    if tools is not None:
        server = LlamaServer(tools)
        try:
            theirs = _measure(server_person(server.url), sizes, runs, turns)
        finally:
            server.stop()
    figures = _report(ours, theirs, burst, decode, turns)
    figures[1].extra["greedy answers beside 3 others (shared cache buffer)"] = drift
    figures.append(
        Figure(
            f"{crowded} people with an 8-bit KV cache (KV_CACHE_TYPE=q8_0 vs f16, the default)",
            [c.tokens_per_second for c in quantized],
            [c.tokens_per_second for c in ours[crowded]],
            "tokens/s",
            "reported: why f16 is the default",
            "q8_0 ÷ f16",
        )
    )
    return figures


def decode_pair(api: str, tools: Path, n: int, key: str = KEY, model: Path = MODEL) -> tuple[float, float]:
    """One person's answer in a new conversation (a short context, as tg128's), then llama-bench right
    after it: this machine's speed drifts within minutes, and each pair meets the same drift."""
    status = ask(api, f"Tell me a long story about {SUBJECTS[n % len(SUBJECTS)]}.", f"decode-{n}", key)
    usage = status["usage"]
    decode = usage["generation_seconds"] - (usage["first_token_seconds"] or 0)
    return (usage["completion_tokens"] - 1) / decode, llama_bench_tg(tools, model)


def divergence(questions: int = 8) -> str:
    """How greedy answers written beside 3 others differ from the same answers written alone, with the
    default shared cache buffer (EXACT_BATCHING=false; with it, they are the same: tested)."""
    from worker.llm import LlamaChatModel, Sampling, words

    settings = ModelSettings(_env_file=None, model_path=MODEL, n_threads=int(THREADS))
    model = LlamaChatModel(MODEL, settings, parallel=PARALLEL)
    greedy = Sampling(temperature=0, top_p=1)
    prompts = [
        model.render_chat([{"role": "user", "content": f"Tell me one thing about {SUBJECTS[i]}."}])
        for i in range(questions)
    ]

    def answer(i: int) -> str:
        return "".join(words(model.generate(prompts[i], ANSWER_TOKENS, lambda: False, greedy)))

    try:
        alone = []
        for i in range(questions):
            model.engine.clear_cache()
            alone.append(answer(i))
        model.engine.clear_cache()
        beside: list[str] = [""] * questions
        for first in range(0, questions, PARALLEL):
            group = range(first, min(first + PARALLEL, questions))
            threads = [threading.Thread(target=lambda i=i: beside.__setitem__(i, answer(i))) for i in group]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        model.close()
    where = [
        next((n for n, (a, b) in enumerate(zip(x, y, strict=False)) if a != b), min(len(x), len(y)))
        for x, y in zip(alone, beside, strict=True)
        if x != y
    ]
    if not where:
        return f"all {questions} the same as alone"
    late = median(where)
    return f"{len(where)} of {questions} differ from alone, first after {late:.0f} characters (median)"


def _late(crowds: list[Crowd], turns: int) -> list[float]:
    return [value for c in crowds for value in c.late_first_token(turns)]


def _report(
    ours: dict[int, list[Crowd]],
    theirs: dict[int, list[Crowd]],
    burst: Crowd,
    decode: list[tuple[float, float]],
    turns: int,
) -> list[Figure]:
    alone, sizes = ours[1], [s for s in ours if s > 1]
    result = []
    for size in sizes:
        penalty = Figure(
            f"Interleave penalty, {size} people × {turns} turns (model's first token, late turns, vs alone)",
            _late(ours[size], turns),
            _late(alone, turns),
            "s",
            "≤ 1.5" if size <= PARALLEL else f"≤ 2 (PARALLEL={PARALLEL})",
            f"{size} people ÷ 1",
        )
        penalty.passed = penalty.ratio <= (1.5 if size <= PARALLEL else 2.0)
        gain = Figure(
            f"Concurrency gain, {size} people (total tokens/s vs 1 person)",
            [c.tokens_per_second for c in ours[size]],
            [c.tokens_per_second for c in alone],
            "tokens/s",
            "≥ 1.3 and ≥ llama-server" if size == PARALLEL else "reported, beside llama-server",
            f"{size} people ÷ 1",
        )
        if theirs:
            their_penalty = median(_late(theirs[size], turns)) / median(_late(theirs[1], turns))
            their_gain = median(c.tokens_per_second for c in theirs[size]) / median(
                c.tokens_per_second for c in theirs[1]
            )
            penalty.extra["llama-server"] = f"{their_penalty:.2f}"
            gain.extra["llama-server"] = f"{their_gain:.2f}"
            gain.extra["llama-server tokens/s"] = f"{median(c.tokens_per_second for c in theirs[size]):.0f}"
            if size == PARALLEL:
                gain.passed = gain.ratio >= 1.3 and gain.ratio >= their_gain
        result += [penalty, gain]
    if decode:
        speed = Figure(
            "Single-person decode speed (worker vs llama-bench tg128)",
            [ours for ours, _ in decode],
            [theirs for _, theirs in decode],
            "tokens/s",
            "≥ 0.9",
            "worker ÷ llama-bench, median of paired runs",
            paired=True,
        )
        speed.passed = speed.ratio >= 0.9
        result.append(speed)
    firsts = sorted(t.first_text for person in burst.turns for t in person)
    p95 = statistics.quantiles(firsts, n=20)[-1] if len(firsts) > 1 else firsts[0]
    result.append(
        Figure(
            f"First visible text, {len(firsts)} people sending at once (vs alone, turn 1)",
            firsts,
            [person[0].first_text for c in alone for person in c.turns],
            "s",
            "reported",
            "p50 ÷ alone",
            extra={"p50": f"{median(firsts):.2f} s", "p95": f"{p95:.2f} s"},
        )
    )
    return result
