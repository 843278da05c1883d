"""The README's figures are the benchmark's: a new `make bench` that changes them fails this test
until the README says the same (bench/results.md is the source)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

RESULTS = (ROOT / "bench" / "results.md").read_text()
README = " ".join((ROOT / "README.md").read_text().split())


def _row(name: str) -> list[str]:
    line = next(line for line in RESULTS.splitlines() if line.startswith(f"| {name}"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _extra(name: str) -> str:
    return next(line for line in RESULTS.splitlines() if line.startswith(f"- {name}"))


def test_the_decode_speed_the_readme_quotes() -> None:
    cells = _row("Single-person decode speed")
    median, ratio = float(cells[1].split()[0]), cells[3].split()[0]
    assert f"about {round(median, -1):.0f} tokens/s for one person" in README
    assert f"{ratio} of llama.cpp's own `llama-bench`" in README


def test_the_gain_from_moving_idle_conversations_out_the_readme_quotes() -> None:
    ratio = _row("One answer's decode beside 3 idle")[3].split()[0]
    assert f"a lone answer was written {ratio} times as fast" in README


def test_the_quantized_cache_figure_the_readme_quotes() -> None:
    ratio = _row("4 people with an 8-bit KV cache")[3].split()[0]
    assert f"{ratio} of f16's output in the latest run" in README


def test_the_document_search_figures_the_readme_quotes() -> None:
    cells = _row("Retrieval with the embedder")
    questions = int(re.search(r"(\d+) Russian and English questions", README).group(1))  # type: ignore[union-attr]
    fused, words = (round(float(cells[n].split()[0]) * questions) for n in (1, 2))
    assert f"the answer in the first five for {fused} by words and meaning, {words} by words alone" in README
    cost = _row("The embedder's cost")
    assert f"it adds ~{float(cost[1].split()[0]):.0f} MB to the worker" in README
    speed = re.search(r"passages embedded per second (\d+)", _extra("The embedder's cost"))
    assert speed is not None and f"embeds ~{speed.group(1)} passages a second" in README


def test_the_image_size_the_readme_quotes() -> None:
    size = re.search(r"the image is (\d+) MB", RESULTS)
    assert size is not None and f"the Docker image, {size.group(1)} MB in all" in README


MODELS = (ROOT / "bench" / "models-results.md").read_text()


def _model_row(name: str) -> list[str]:
    line = next(line for line in MODELS.splitlines() if line.startswith(f"| {name}"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _model_extra(name: str) -> str:
    return next(line for line in MODELS.splitlines() if line.startswith(f"- {name}"))


def _parts(line: str) -> dict[str, int]:
    return {
        part: int(mb) for part, mb in re.findall(r"(Redis|bot|gateway|rq-dashboard|worker) (\d+) MB", line)
    }


def test_the_model_table_the_readme_quotes() -> None:
    for name in ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"):
        row = next(line for line in README.split(" | `")[1:] if line.startswith(f"{name}` |"))
        memory = sum(_parts(_model_extra(f"Memory, {name}:")).values())
        speed = _model_extra(f"Speed, {name}:")
        decode = float(re.search(r"decode ([\d.]+) tokens/s", speed).group(1))  # type: ignore[union-attr]
        turn1, turn8 = re.search(r"turn 1 ([\d.]+) s, at turn 8 ([\d.]+) s", speed).groups()  # type: ignore[union-attr]
        right = float(_model_row(f"Answers right, {name}:")[1].split()[0])
        assert f"| {memory:,} MB |" in row, name
        assert f"| {decode:.3g} tokens/s |" in row, name
        assert f"| {turn1} s / {turn8} s |" in row, name
        assert f"| {round(right * 16)} of 16 |" in row, name


def test_the_memory_the_readme_quotes() -> None:
    # The defaults as fitted to the box each is chosen for come first in the bench's section.
    large = _parts(_model_extra("Memory, qwen2.5-coder-1.5b: whole stack, as the stack fits itself"))
    small = _parts(_model_extra("Memory, qwen2.5-coder-0.5b: whole stack, as the stack fits itself"))
    assert f"**{sum(large.values()):,} MB**; with the 0.5B model **{sum(small.values()):,} MB**" in README
    for part, mb in large.items():
        assert f"{part} {mb} MB" in README, part
    full = _parts(_model_extra("Memory, qwen2.5-coder-1.5b: whole stack, PARALLEL=4"))
    assert f"with `PARALLEL=4` the 1.5B stack takes {sum(full.values()):,} MB" in README
    before_voice = re.search(
        r"before the first voice note (\d+) MB", _model_extra("Memory, qwen2.5-coder-0.5b:")
    )
    assert before_voice is not None
    assert f"{int(before_voice.group(1)):,} MB before the first voice note" in README
    for name in ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"):
        line = _model_extra(f"Memory, {name}: whole stack, as the stack fits itself")
        read = re.search(r"after a document was read and asked of too (\d+) MB", line)
        assert read is not None, name
        assert f"{int(read.group(1)):,} MB once a document has been" in README, name


def test_the_voice_figures_the_readme_quotes() -> None:
    for model in ("base", "tiny.en"):
        factors = [
            _model_row(f"Transcription of a {seconds} s voice note, {model}")[1].split()[0]
            for seconds in (30, 120)
        ]
        said = (
            f"{factors[0]} for a 30 s note and {factors[1]} for a 120 s note"
            if model == "base"
            else " and ".join(factors)
        )
        assert said in README, model
        added = re.search(
            r"added by the speech model (\d+) MB",
            _model_extra(f"Memory of the whole stack after voice notes, {model}"),
        )
        assert added is not None
        assert (
            f"base adds {added.group(1)} MB" if model == "base" else f"tiny.en {added.group(1)} MB"
        ) in README
