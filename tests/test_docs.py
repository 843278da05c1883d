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


def test_the_memory_the_readme_quotes() -> None:
    total = float(_row("Memory of the whole stack")[1].split()[0])
    assert f"**{total:.0f} MB** for the whole stack" in README
    for part, mb in re.findall(r"(Redis|bot|gateway|rq-dashboard|worker) (\d+) MB", _extra("Memory of")):
        assert f"{part} {mb} MB" in README, part


def test_the_voice_figures_the_readme_quotes() -> None:
    for seconds in (30, 120):
        factor = _row(f"Transcription of a {seconds} s voice note")[1].split()[0]
        assert f"{factor} for a {seconds} s note" in README, seconds
    added = re.search(r"added by the speech model (\d+) MB", _extra("Memory of the whole stack after voice"))
    assert added is not None
    assert f"adds {added.group(1)} MB to the worker" in README
    assert f"model, once a voice note has come, adds {added.group(1)} MB" in README
