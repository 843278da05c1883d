"""With no model chosen, the machine's memory picks the default; an operator's choice always wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import ModelSettings, WorkerSettings
from shared.machine import memory_mb
from shared.presets import LARGE_DEFAULT, PRESETS, SMALL_DEFAULT, bot_in_gateway, wants_dashboard


def _meminfo(tmp_path: Path, kib: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       {kib} kB\nMemFree:        1000 kB\n")
    return path


@pytest.mark.parametrize(
    ("kib", "preset"),
    [
        (2_014_000, LARGE_DEFAULT),  # a "2 GB" VPS as the kernel reports it
        (4_000_000, LARGE_DEFAULT),
        (1_004_000, SMALL_DEFAULT),  # a "1 GB" VPS
        (1_500_000, SMALL_DEFAULT),
    ],
)
def test_the_default_follows_the_machines_memory(tmp_path: Path, kib: int, preset: str) -> None:
    memory = memory_mb(_meminfo(tmp_path, kib), cgroup_limits=())
    chosen, reason = ModelSettings(_env_file=None, memory_mb=memory).choice()
    assert chosen is PRESETS[preset]
    assert f"{memory / 1000:.1f} GB of memory" in reason


def test_a_containers_limit_counts_over_the_hosts_memory(tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(f"{1024**3}\n")
    unlimited = tmp_path / "v1-limit"
    unlimited.write_text("max\n")
    assert memory_mb(_meminfo(tmp_path, 16_000_000), (limit, unlimited)) == 1073
    assert memory_mb(_meminfo(tmp_path, 16_000_000), (unlimited, tmp_path / "absent")) == 16_384


def test_the_choice_is_named_with_its_reason() -> None:
    line = ModelSettings(_env_file=None, memory_mb=1000).describe_choice()
    assert line.startswith(f"Model: {SMALL_DEFAULT}, the default: this machine has 1.0 GB of memory")
    assert "MODEL_PRESET or MODEL_PATH" in line


def test_an_operators_choice_wins_over_memory(tmp_path: Path) -> None:
    mine = tmp_path / "mine.gguf"
    by_path = ModelSettings(_env_file=None, memory_mb=64_000, model_path=mine)
    assert by_path.choice() == (None, "MODEL_PATH") and by_path.resolved_path() == mine
    by_preset = ModelSettings(_env_file=None, memory_mb=500, model_preset=LARGE_DEFAULT)
    assert by_preset.choice() == (PRESETS[LARGE_DEFAULT], "MODEL_PRESET")
    by_file = ModelSettings(_env_file=None, memory_mb=64_000, model_file="x.gguf", models_dir=tmp_path)
    assert by_file.choice() == (None, "MODEL_FILE") and by_file.resolved_path() == tmp_path / "x.gguf"


def test_the_tests_model_is_never_a_default() -> None:
    for memory in (256, 1000, 2000, 64_000):
        chosen, _ = ModelSettings(_env_file=None, memory_mb=memory).choice()
        assert chosen is not None and chosen.name != "smollm2-135m"


@pytest.mark.parametrize(
    ("memory", "parallel", "kv_cache_mb", "n_batch", "kv_type", "dashboard"),
    [
        # a "1 GB" VPS: the 0.5B model, compact, its context in q8_0, prompts read in small steps,
        # no rq-dashboard (each measured to take it under 900 MB)
        (1_000, 2, 16, 64, "q8_0", False),
        # a "2 GB" VPS: the 1.5B model, compact (4 at once did not fit, measured)
        (1_966, 2, 32, 512, "f16", True),
        (4_000, 4, 128, 512, "f16", True),  # room for the 1.5B model writing 4 answers at once
    ],
)
def test_the_default_model_is_run_to_fit_the_memory(
    memory: int, parallel: int, kv_cache_mb: int, n_batch: int, kv_type: str, dashboard: bool
) -> None:
    model = ModelSettings(_env_file=None, memory_mb=memory)
    assert WorkerSettings(_env_file=None).answers_at_once(model) == parallel
    assert model.kv_cache_budget_mb() == kv_cache_mb
    assert model.batch_tokens() == n_batch
    assert model.kv_type() == kv_type
    assert wants_dashboard(None, model.box_mb()) is dashboard
    # Asked for or against, the dashboard is what the operator said.
    assert wants_dashboard(True, memory) is True and wants_dashboard(False, memory) is False
    # The bot shares the gateway's process exactly where the dashboard is left out for memory.
    assert bot_in_gateway(None, model.box_mb()) is not dashboard
    assert bot_in_gateway(True, memory) is True and bot_in_gateway(False, memory) is False


def test_a_prompt_step_is_never_longer_than_the_context() -> None:
    assert ModelSettings(_env_file=None, memory_mb=4_000, n_ctx=256).batch_tokens() == 256
    assert ModelSettings(_env_file=None, memory_mb=1_000, n_batch=64).batch_tokens() == 64


def test_the_operators_parallel_and_kv_cache_win_over_the_fit(tmp_path: Path) -> None:
    small_box = ModelSettings(_env_file=None, memory_mb=1_966, kv_cache_mb=64)
    assert WorkerSettings(_env_file=None, parallel=3).answers_at_once(small_box) == 3
    assert small_box.kv_cache_budget_mb() == 64
    assert ModelSettings(_env_file=None, memory_mb=1_000, kv_cache_type="f16").kv_type() == "f16"
    # A model of the operator's own, or a remote server, is not fitted: the plain defaults.
    for chosen in (
        ModelSettings(_env_file=None, memory_mb=1_966, model_path=tmp_path / "mine.gguf"),
        ModelSettings(_env_file=None, memory_mb=1_966, llm_backend="openai"),
    ):
        assert WorkerSettings(_env_file=None).answers_at_once(chosen) == 4
        assert chosen.kv_cache_budget_mb() == 128
        assert chosen.batch_tokens() == 512
        assert chosen.kv_type() == "f16"
