"""Finding the GGUF file to load: on disk, or downloaded from the Hugging Face Hub."""

from __future__ import annotations

import logging
from pathlib import Path

from shared.config import ModelSettings

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The configured model cannot be found or fetched; the message says what to do."""


def resolve_model_path(settings: ModelSettings) -> Path:
    """MODEL_PATH if set; else MODELS_DIR/MODEL_FILE, downloaded from MODEL_REPO when missing."""
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelUnavailable(f"MODEL_PATH {settings.model_path} does not exist or is not a file.")
        return settings.model_path
    local = settings.models_dir / settings.model_file
    if local.is_file():
        return local
    if settings.model_repo:
        return download_from_hub(settings.model_repo, settings.model_file, settings.models_dir)
    raise ModelUnavailable(
        f"Model file {local} not found. Run `make model` to fetch the default model, "
        "set MODEL_PATH to a GGUF file, or set MODEL_REPO (and MODEL_FILE) to download one."
    )


def download_from_hub(repo: str, filename: str, models_dir: Path) -> Path:
    """Download one GGUF file from a Hub repository into `models_dir`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    log.info("downloading %s from %s into %s", filename, repo, models_dir)
    try:
        path = hf_hub_download(repo_id=repo, filename=filename, local_dir=models_dir)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelUnavailable(
            f"Could not download {filename} from the Hugging Face Hub repository {repo}: {exc}. "
            "Check this machine's internet access and the names, or copy the file here and set MODEL_PATH."
        ) from exc
    return Path(path)
