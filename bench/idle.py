"""One answer's decode speed beside idle conversations: moved to RAM (the default) or left in the
model's shared cache buffer, where every token's attention runs over their cells too.

Measured on the engine itself (no gateway): three conversations of about a thousand tokens each
are read, then left idle while one new answer is written; the two ways alternate, pair by pair.
"""

from __future__ import annotations

import time

from bench.harness import MODEL, THREADS, Figure
from shared.config import ModelSettings

NEIGHBOURS = 3
ANSWER_TOKENS = 96
_SENTENCE = "Sentence {} tells of a river, a mountain and the town between them. "


def figure(pairs: int) -> Figure:
    from worker.llm import LlamaChatModel, Sampling

    settings = ModelSettings(_env_file=None, model_path=MODEL, n_threads=int(THREADS), n_ctx=2048)
    model = LlamaChatModel(MODEL, settings, parallel=NEIGHBOURS + 1)
    greedy = Sampling(temperature=0, top_p=1)
    engine = model.engine

    def decode_beside_neighbours(pair: int, park: bool) -> float:
        engine.clear_cache()
        engine.park_idle = False  # all three stay in the buffer while they are read
        for n in range(NEIGHBOURS):
            text = "".join(_SENTENCE.format(i) for i in range(60)) + f"Summarise part {n}."
            prompt = model.render_chat([{"role": "user", "content": text}])
            for _ in model.generate(prompt, 1, lambda: False, greedy, cache_key=f"neighbour-{n}"):
                pass
        engine.park_idle = park
        tokens = 0

        def count() -> bool:
            nonlocal tokens
            tokens += 1
            return False

        prompt = model.render_chat([{"role": "user", "content": f"Tell me a long story, number {pair}."}])
        first = None
        for _ in model.generate(prompt, ANSWER_TOKENS, count, greedy, cache_key="writer"):
            if first is None:
                first, at_first = time.perf_counter(), tokens
        assert first is not None
        return (tokens - at_first) / (time.perf_counter() - first)

    parked: list[float] = []
    resident: list[float] = []
    try:
        for pair in range(pairs):
            parked.append(decode_beside_neighbours(pair, park=True))
            resident.append(decode_beside_neighbours(pair, park=False))
    finally:
        engine.park_idle = True
        model.close()
    return Figure(
        f"One answer's decode beside {NEIGHBOURS} idle ~1,000-token conversations (moved to RAM vs "
        "left in the shared cache buffer)",
        parked,
        resident,
        "tokens/s",
        "reported: why idle contexts leave the buffer",
        "moved ÷ left, median of paired runs",
        paired=True,
    )
