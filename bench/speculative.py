"""Whether drafting pays on two cores, measured where it is cheapest: in llama.cpp's own server.

One person, greedy, the 1.5B model answering plain Russian and English questions, with and without
drafts, on the same file, threads and requests, back to back per question (paired ratios):
- the 0.5B model as the draft (the two Qwen2.5-Coder files share one tokenizer);
- drafts looked up in the conversation itself (n-grams of the prompt and the answer so far).

llama-server's C++ loop is the upper bound of what drafting could give our worker, whose every
batch step is a call from Python: if it does not pay there, it is not built here (the rule: on by
default only at 1.2 times the single-person decode with the same greedy answers).

`python -m bench.speculative` (and a full `make bench`) writes bench/speculative-results.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from bench.concurrency import LlamaServer
from bench.harness import THREADS, Figure, table_rows
from shared.config import ModelSettings
from shared.presets import LARGE_DEFAULT, PRESETS, SMALL_DEFAULT

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
ANSWER_TOKENS = 128
QUESTIONS = [
    "Объясни в трёх предложениях, почему небо голубое.",
    "Напиши функцию на Python, которая проверяет, является ли строка палиндромом.",
    "Какие три совета ты дашь человеку, который начинает учить английский?",
    "Explain in three sentences why the sky is blue.",
    "Write a Python function that checks whether a string is a palindrome.",
    "List three tips for someone starting to learn Russian.",
]
# How each way of drafting is asked of llama-server (besides the target model and threads).
WAYS = {
    **{
        f"{SMALL_DEFAULT} as the draft, up to {n} tokens": [
            "--spec-type", "draft-simple", "-md", str(MODELS / PRESETS[SMALL_DEFAULT].file),
            "-td", THREADS, "--spec-draft-n-max", str(n),
        ]
        for n in (4, 8)
    },
    "n-grams of the conversation": ["--spec-type", "ngram-simple"],
}  # fmt: skip


# (tokens per second of the answer's decoding, its text, llama-server's timings)
Answer = tuple[float, str, dict[str, float]]


def _answer(url: str, question: str) -> Answer:
    """(tokens per second of the answer's decoding, its text, llama-server's timings)."""
    body = {
        "messages": [
            {"role": "system", "content": ModelSettings(_env_file=None).system_prompt},
            {"role": "user", "content": question},
        ],
        "max_tokens": ANSWER_TOKENS,
        "temperature": 0,
        "repeat_penalty": 1.1,  # our worker's default
        "repeat_last_n": 64,
        "cache_prompt": False,
    }
    started = time.perf_counter()
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600).json()
    wall = time.perf_counter() - started
    timings = reply["timings"]
    tokens = reply["usage"]["completion_tokens"]
    # Wall time less the prompt's reading: drafting's own cost is inside, wherever it is counted.
    decoding = wall - timings["prompt_ms"] / 1000
    return tokens / decoding, reply["choices"][0]["message"]["content"], timings


def measure(tools: Path, runs: int = 1) -> dict[str, list[tuple[Answer, Answer]]]:
    """Per way of drafting: (plain, drafted) answers to each question, asked back to back of two
    servers running side by side, so that each pair meets the same load of the shared machine."""
    target = MODELS / PRESETS[LARGE_DEFAULT].file
    results: dict[str, list[tuple[Answer, Answer]]] = {}
    for way, extra in WAYS.items():
        plain = LlamaServer(tools, target, slots=1, context=4096)
        drafted = LlamaServer(tools, target, slots=1, context=4096, extra=extra)
        try:
            _answer(plain.url, "warm up")
            _answer(drafted.url, "warm up")
            results[way] = [
                (_answer(plain.url, q), _answer(drafted.url, q)) for _ in range(runs) for q in QUESTIONS
            ]
        finally:
            plain.stop()
            drafted.stop()
    return results


def figures(tools: Path, runs: int = 1) -> list[Figure]:
    out = []
    for way, pairs in measure(tools, runs).items():
        plain = [p for p, _ in pairs]
        drafted = [d for _, d in pairs]
        same = sum(p[1] == d[1] for p, d in pairs)
        drafts = sum(t.get("draft_n", 0) for _, _, t in drafted)
        accepted = sum(t.get("draft_n_accepted", 0) for _, _, t in drafted)
        figure = Figure(
            f"Speculative decoding, {LARGE_DEFAULT}, {way} (llama-server, one person, vs no drafts)",
            [s for s, _, _ in drafted],
            [s for s, _, _ in plain],
            "tokens/s",
            "≥ 1.2 with the same answers, to be built on by default",
            "drafted ÷ plain, median of paired answers",
            paired=True,
        )
        figure.passed = figure.ratio >= 1.2 and same == len(pairs)
        figure.extra["same answers"] = f"{same} of {len(pairs)}"
        if drafts:
            figure.extra["drafted tokens accepted"] = f"{accepted} of {drafts} ({accepted / drafts:.0%})"
        out.append(figure)
    return out


def report(found: list[Figure], out: Path) -> None:
    """The section bench/results.md links to."""
    lines = [
        "## Speculative decoding (`python -m bench.speculative`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"{THREADS} threads, llama-server alone with {LARGE_DEFAULT}, one person, {len(QUESTIONS)} "
        f"questions (Russian and English), greedy with the worker's repeat penalty, {ANSWER_TOKENS} new "
        "tokens at most. Two servers side by side, plain and drafted, asked each question back to back; "
        "ratios: median of each question's drafted ÷ plain decode speed.",
        "",
        "| figure | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
        *table_rows(found),
    ]
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    from bench.native import ensure_tools

    out = Path(__file__).with_name("speculative-results.md")
    report(figures(ensure_tools()), out)
    print(out.read_text())


if __name__ == "__main__":
    main()
