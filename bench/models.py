"""The models people run, each measured on the stack. For each chat model size: the memory of the
whole stack (PARALLEL=4, the bot running, the speech model loaded) against the budget of the box it
is the default for, decode speed and the first token at turn 1 and turn 8 of one conversation, and
the share of plain questions answered right (bench.quality) through the stack against the same model
alone. For each speech model (bench.voice): its real-time factor beside faster-whisper alone, and
what it adds to the stack's memory.

`python -m bench.run --only models [--model NAME]` runs just these and writes
bench/models-results.md, which bench/results.md takes in.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from statistics import median

import httpx

from bench import quality, voice
from bench.harness import KEY, MODEL, ROOT, THREADS, Figure, ask, stack, table_rows
from shared.config import ModelSettings
from shared.presets import LARGE_DEFAULT, PRESETS, SMALL_DEFAULT, default_fit, wants_dashboard

MODELS = ROOT / "data" / "models"
SIZES = ("smollm2-135m", SMALL_DEFAULT, LARGE_DEFAULT)
# The box each default is chosen for, as its kernel reports it, and what the stack may take there:
# a 2 GB VPS leaves ~250 MB to the system, a 1 GB one ~100 MB.
BOX_MB = {LARGE_DEFAULT: 1966, SMALL_DEFAULT: 1000}
BUDGET_MB = {LARGE_DEFAULT: 1750, SMALL_DEFAULT: 900}
TURNS = 8
TOPICS = ["the ocean", "forests", "the moon"]


def _memory(name: str, path: Path) -> list[Figure]:
    """The stack as the default model is run on the box it is chosen for (its fit), against that
    box's budget; and, for comparison, at the plain PARALLEL=4."""
    from bench.memory import measure_all

    box = BOX_MB.get(name)
    # (how it is run: a model file, or None for the default the stack picks for the box, with its
    # settings; the budget it is held to: the fitted run only)
    runs: list[tuple[str, Path | None, dict[str, str], int | None]] = [
        ("PARALLEL=4", path, {"PARALLEL": "4"}, None)
    ]
    if box is not None:
        fit = default_fit(box)
        assert fit.preset == name, f"a {box} MB box gets {fit.preset}, not {name}"
        shape = [
            f"PARALLEL={fit.parallel}",
            f"KV_CACHE_MB={fit.kv_cache_mb}",
            f"N_BATCH={fit.n_batch}",
            f"KV_CACHE_TYPE={fit.kv_cache_type}",
        ]
        if not wants_dashboard(None, box):
            shape.append("no rq-dashboard")
        how = f"as the stack fits itself to {box} MB ({', '.join(shape)})"
        runs.insert(0, (how, None, {"MEMORY_MB": str(box)}, BUDGET_MB[name]))
    figures = []
    for how, model, settings, budget in runs:
        text_only, with_voice, with_document = measure_all(model, settings)
        total = sum(with_voice.values())
        assert with_document is not None
        read = sum(with_document.values())
        document = f"{read:.0f} MB" + (
            f" ({'within' if read <= budget else 'over'} {budget})" if budget else ""
        )
        figures.append(
            Figure(
                f"Memory, {name}: whole stack, {how}, voice model loaded",
                [total],
                [float(budget or sum(text_only.values()))],
                "MB",
                f"≤ {budget} MB" if budget else "reported",
                "stack ÷ budget" if budget else "with voice ÷ text only",
                passed=total <= budget if budget else None,
                extra={part: f"{mb:.0f} MB" for part, mb in sorted(with_voice.items())}
                | {"before the first voice note": f"{sum(text_only.values()):.0f} MB"}
                | {"after a document was read and asked of too": document},
            )
        )
    return figures


def _speed(name: str, path: Path, workdir: Path, runs: int) -> Figure:
    first: dict[int, list[float]] = {1: [], TURNS: []}
    decode: list[float] = []
    with stack(workdir, MODEL_PATH=str(path), MAX_TOKENS="96") as api:
        ask(api, "warm up", "warm")
        for run in range(runs):
            topic = TOPICS[run % len(TOPICS)]
            for turn in range(1, TURNS + 1):
                usage = ask(api, f"Tell me one more fact about {topic}, number {turn}.", f"{name}-{run}")[
                    "usage"
                ]
                if turn in first:
                    first[turn].append(usage["first_token_seconds"])
                writing = usage["generation_seconds"] - usage["first_token_seconds"]
                if usage["completion_tokens"] > 1 and writing > 0:
                    decode.append((usage["completion_tokens"] - 1) / writing)
    return Figure(
        f"Speed, {name}: first token at turn {TURNS} vs turn 1, one person",
        first[TURNS],
        first[1],
        "s",
        "reported",
        f"turn {TURNS} ÷ turn 1",
        extra={
            "decode": f"{median(decode):.1f} tokens/s",
            "first token at turn 1": f"{median(first[1]):.2f} s",
            f"at turn {TURNS}": f"{median(first[TURNS]):.2f} s",
        },
    )


def _answers(name: str, path: Path, workdir: Path) -> Figure:
    defaults = ModelSettings(_env_file=None)
    with (
        stack(workdir, MODEL_PATH=str(path), MAX_TOKENS=str(quality.MAX_TOKENS)) as api,
        httpx.Client(base_url=api, headers={"X-API-Key": KEY}, timeout=120) as http,
    ):
        ours = quality.stack_answers(http)
    alone = quality.direct_answers(path, defaults.system_prompt, int(THREADS), defaults.repeat_penalty)
    is_default = name in BUDGET_MB
    return Figure(
        f"Answers right, {name}: Russian and English questions, stack vs the model alone",
        [quality.score(ours)],
        [quality.score(alone)],
        "share",
        "≥ the model alone" if is_default else "reported",
        "stack ÷ alone",
        passed=quality.score(ours) >= quality.score(alone) if is_default else None,
        extra={"questions": str(len(quality.QUESTIONS)), "wrong through the stack": _wrong(ours) or "none"},
    )


def _grounded(name: str, path: Path, workdir: Path, runs: int) -> Figure:
    """The model's first token for a question asked beside a document (its passages read first)
    against the same question with none, each pair back to back, fresh conversations."""
    from bench.retrieval_set import DOCUMENTS
    from fakes import documents as files

    document_name = "магазин.pdf"
    question = "Сколько дней ждать курьера с покупкой?"
    pdf = files.pdf(DOCUMENTS[document_name])
    ours, alone, prompts = [], [], []
    with (
        stack(workdir, MODEL_PATH=str(path), MAX_TOKENS="32") as api,
        httpx.Client(base_url=api, headers={"X-API-Key": KEY}, timeout=120) as http,
    ):
        ask(api, "warm up", "warm")
        for run in range(runs):
            user = f"docs-{run}"
            sent = http.post("/api/documents", data={"user_id": user}, files={"file": (document_name, pdf)})
            document_id = sent.json()["document_id"]
            while http.get(f"/api/documents/{document_id}", params={"user_id": user}).json()["status"] in (
                "queued",
                "started",
            ):
                time.sleep(0.2)
            grounded = ask(api, question, user)
            plain = ask(api, question, f"plain-{run}")
            ours.append(grounded["usage"]["first_token_seconds"])
            alone.append(plain["usage"]["first_token_seconds"])
            prompts.append((grounded["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"]))
    return Figure(
        f"Documents, {name}: the model's first token for a question beside a document vs without",
        ours,
        alone,
        "s",
        "reported",
        "with ÷ without, median of pairs",
        paired=True,
        extra={
            "prompt tokens with / without": "{:.0f} / {:.0f}".format(*map(median, zip(*prompts, strict=True)))
        },
    )


def _wrong(answers: list[str], shown: int = 4) -> str:
    wrong = [(q, a) for q, a in zip(quality.QUESTIONS, answers, strict=True) if not quality.passes(q, a)]
    listed = "; ".join(f"{q.turns[-1]} → {a[:50]!r}" for q, a in wrong[:shown])
    return listed + (f"; and {len(wrong) - shown} more" if len(wrong) > shown else "")


def figures(workdir: Path, runs: int, only: str | None, voice_lengths: tuple[int, ...]) -> list[Figure]:
    """The chat model sizes (or `only` one), then the speech models."""
    results = []
    for name in SIZES if only is None else (only,):
        path = MODELS / PRESETS[name].file
        results += _memory(name, path)
        results.append(_speed(name, path, workdir / f"speed-{name}", runs))
        results.append(_answers(name, path, workdir / f"answers-{name}"))
        if name in BUDGET_MB:  # the defaults
            results.append(_grounded(name, path, workdir / f"documents-{name}", runs))
    results += voice.figures(workdir / "voice", runs, voice_lengths)
    results += speech_memory()
    return results


def speech_memory() -> list[Figure]:
    """The whole stack with the fast chat model, before and after voice notes with each speech model."""
    from bench.memory import measure

    figures = []
    for n, name in enumerate(voice.MODELS):
        text_only, with_voice = measure(settings={"STT_MODEL": name})
        total = sum(text_only.values())
        if n == 0:
            figures.append(
                Figure(
                    f"Memory of the whole stack with {MODEL.stem.split('.')[0]} (PARALLEL=4)",
                    [total],
                    [800.0],
                    "MB",
                    "< 800 MB (fits a 1 GB VPS)",
                    "stack ÷ 800 MB budget",
                    passed=total < 800,
                    extra={part: f"{mb:.0f} MB" for part, mb in sorted(text_only.items())},
                )
            )
        # No budget was set for voice: what each speech model adds is reported for operators to weigh.
        added = with_voice["worker"] - text_only["worker"]
        figures.append(
            Figure(
                f"Memory of the whole stack after voice notes, {name} (the speech model loaded)",
                [sum(with_voice.values())],
                [total],
                "MB",
                "reported: what voice adds",
                "after voice ÷ before",
                extra={
                    "worker": f"{with_voice['worker']:.0f} MB",
                    "added by the speech model": f"{added:.0f} MB",
                },
            )
        )
    return figures


def report(figures: list[Figure], out: Path, runs: int) -> None:
    """The section bench/results.md takes in."""
    lines = [
        "## The models people run",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, {THREADS} "
        f"threads, {runs} conversation(s) of {TURNS} turns per model, greedy, 96 new tokens at most.",
        "",
        "| figure | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += table_rows(figures)
    out.write_text("\n".join(lines) + "\n")
