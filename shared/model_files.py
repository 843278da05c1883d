"""GGUF files on disk: is it one, and is it still the file that was downloaded.

At the first download the file's SHA-256 (checked against the hub's own record of it when the hub
gives one) is written beside it, with its size and modification time. Later loads compare size
and time, and only when either changed read the whole file again: a file altered or damaged since
is refused, not loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
_CHUNK = 1 << 20


class ModelFileRefused(Exception):
    """The file is not a GGUF model, or not the one that was downloaded; the message says which."""


def record_path(model: Path) -> Path:
    return model.with_name(model.name + ".sha256.json")


def check_gguf(path: Path) -> None:
    with open(path, "rb") as file:
        if file.read(4) != GGUF_MAGIC:
            raise ModelFileRefused(f"{path.name} is not a GGUF model file (its first bytes say otherwise).")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remember(path: Path, digest: str) -> str:
    """Write `path`'s SHA-256 beside it, with the size and time that let later loads skip hashing."""
    stat = path.stat()
    record_path(path).write_text(
        json.dumps({"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}) + "\n"
    )
    log.info("model %s: SHA-256 %s recorded", path.name, digest)
    return digest


def record(path: Path, expected_sha256: str | None = None, pinned: bool = False) -> str:
    """Hash a freshly downloaded file, check it against the expected hash if known (the pinned one,
    or the hub's), and remember it."""
    check_gguf(path)
    digest = sha256_of(path)
    if expected_sha256 and digest != expected_sha256.lower():
        whose = "pinned" if pinned else "hub's"
        raise ModelFileRefused(
            f"{path.name} does not match the {whose} SHA-256 ({digest[:12]}… instead of "
            f"{expected_sha256[:12]}…): the download is damaged or the file was replaced."
        )
    return remember(path, digest)


def verified_sha256(path: Path) -> str | None:
    """The SHA-256 recorded for `path`, once it is sure the file is still that one (None: no record).

    Size and time unchanged: taken as is. Either changed: the file is read again, and refused if
    its bytes changed."""
    kept = record_path(path)
    if not kept.is_file():
        return None
    expected = json.loads(kept.read_text())
    stat = path.stat()
    if stat.st_size == expected["size"] and stat.st_mtime_ns == expected["mtime_ns"]:
        return str(expected["sha256"])
    if sha256_of(path) != expected["sha256"]:
        raise ModelFileRefused(
            f"{path.name} changed since it was downloaded (its SHA-256 differs from the one recorded in "
            f"{kept.name}): delete both to download it again."
        )
    try:
        return remember(path, str(expected["sha256"]))  # the same bytes, touched: the next start is quick
    except OSError:
        # A folder this process may not write (an image's, a read-only mount): the bytes are
        # checked, so the file is used; they are hashed again at the next start.
        return str(expected["sha256"])


def known_sha256(path: Path) -> str:
    """`path`'s SHA-256: the recorded one (checked as `verified_sha256` does), or, for a file put here
    by hand or by a release that kept no record, hashed once and recorded."""
    return verified_sha256(path) or remember(path, sha256_of(path))


def verify(path: Path) -> None:
    """Refuse a file that is not GGUF, or that changed since its hash was recorded (if it was)."""
    check_gguf(path)
    verified_sha256(path)
