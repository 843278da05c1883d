"""Model presets: small instruction models that run on a 1-4 GB CPU box, by name (MODEL_PRESET).

Every repository and file name was checked on the model's own Hugging Face page (November 2026).
Memory is the file plus an f16 KV cache (the default q8_0 takes half) and the process (PARALLEL=4,
N_CTX=2048); speed is an estimate for one answer on 2 cores, scaled by file size from the default
model measured here (decode on a CPU reads the whole file for every token): a guide to choose by,
not a promise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    repo: str
    file: str
    licence: str
    languages: str
    size_mb: int  # the file
    ram_mb: int  # the worker with it loaded, roughly
    tokens_per_second: int  # one answer on 2 cores, estimated
    note: str = ""


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
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


def catalogue() -> str:
    """The presets as a table for a terminal (`make model PRESET=list`)."""
    lines = [f"{'preset':<20} {'file':>7} {'RAM':>8} {'tok/s':>6}  languages · licence"]
    for p in PRESETS.values():
        sizes = f"{p.size_mb:>5}MB {p.ram_mb:>6}MB {p.tokens_per_second:>6}"
        lines.append(f"{p.name:<20} {sizes}  {p.languages} · {p.licence}")
    return "\n".join(lines)
