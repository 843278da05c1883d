"""Structured output's cost to its neighbours: three plain answers written beside one held to a JSON
schema, against the same three beside a fourth plain one, in the same engine, pair by pair.

The grammar is checked in the engine's one thread, so whatever it costs every answer in the batch
waits for. Ours: the three plain answers' tokens per second beside the constrained one; baseline:
beside a plain one. Also reported: the grammar's milliseconds per constrained token.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from bench.harness import THREADS, Figure
from shared.config import ModelSettings

_SCHEMA = json.dumps(
    {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 40},
                    "continent": {"enum": ["Europe", "Asia", "Africa", "America", "Oceania"]},
                    "landmarks": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 40},
                        "maxItems": 5,
                    },
                },
                "required": ["name", "continent", "landmarks"],
                "additionalProperties": False,
            },
        },
    }
)
_PLAIN = ["Tell me about the ocean.", "Расскажи о лесах.", "Describe the moon."]
_TOKENS = 64


def figure(runs: int, path: Path | None = None) -> Figure:
    from worker.llm import LlamaChatModel, Sampling

    path = path or ModelSettings(_env_file=None).resolved_path()
    settings = ModelSettings(_env_file=None, model_path=path, n_threads=int(THREADS), n_ctx=1024)
    model = LlamaChatModel(path, settings, parallel=4)
    plain = Sampling(temperature=0, top_p=1)
    held = Sampling(temperature=0, top_p=1, response_format=_SCHEMA)

    def batch(fourth: Sampling) -> float:
        """The three plain answers' tokens per second, written beside `fourth`."""
        counts = [0, 0, 0]
        start = threading.Barrier(5)

        def run(i: int) -> None:
            question = "Describe Paris as JSON." if i == 3 else _PLAIN[i]
            rendered = model.render_chat([{"role": "user", "content": question}])
            sampling = fourth if i == 3 else plain

            def tick(i: int = i) -> bool:
                if i < 3:
                    counts[i] += 1
                return False

            start.wait()
            for _ in model.generate(rendered, _TOKENS, tick, sampling):
                pass

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads[:3]:
            thread.join()
        elapsed = time.perf_counter() - began
        for thread in threads[3:]:
            thread.join()
        return sum(counts) / elapsed

    try:
        ours, baseline = [], []
        batch(plain)  # warm-up
        for _ in range(runs):
            baseline.append(batch(plain))
            ours.append(batch(held))
        stats = model.engine.stats
        per_token = 1000 * stats.grammar_seconds / max(stats.constrained_tokens, 1)
    finally:
        model.close()
    result = Figure(
        name=f"3 plain answers beside one held to a JSON schema ({path.stem})",
        ours=ours,
        baseline=baseline,
        unit="tok/s",
        target="≥ 0.95",
        ratio_note="beside a plain fourth",
        extra={"grammar per constrained token": f"{per_token:.2f} ms"},
        paired=True,
    )
    result.passed = result.ratio >= 0.95
    return result
