"""Audio to 16 kHz mono samples, bounded before and while it is decoded.

A compressed file is no measure of its length: a 656 KB FLAC holds an hour of silence, 20 MB about
thirty hours, which decoded whole (as faster-whisper's `decode_audio` does) is gigabytes of samples
before any length is known. Here the length the container declares is checked before anything is
decoded, and decoding goes frame by frame and stops as soon as the samples pass the limit, so a note
takes at most `max_seconds` of samples (2 bytes each while decoding) whatever its file says.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000


class AudioTooLong(Exception):
    def __init__(self, seconds: float, limit: float, declared: bool) -> None:
        how = "declares" if declared else "holds more than"
        super().__init__(f"the file {how} {seconds:.0f} s, over {limit:.0f} s")
        self.seconds = seconds


class AudioUnreadable(Exception):
    pass


def decode(audio: bytes, max_seconds: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The samples of the first audio stream in `audio` (anything FFmpeg reads), as float32 at 16 kHz.

    Raises AudioTooLong once the stream is found to be longer than `max_seconds` (from its header, or
    while decoding, whichever comes first), AudioUnreadable for what is not audio."""
    import av

    limit = int(max_seconds * SAMPLE_RATE)
    pieces: list[np.ndarray[Any, Any]] = []  # int16, as the resampler was asked for
    held = 0
    try:
        with av.open(io.BytesIO(audio), mode="r", metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioUnreadable("no audio stream in the file")
            declared = _declared_seconds(container, stream)
            if declared is not None and declared > max_seconds:
                raise AudioTooLong(declared, max_seconds, declared=True)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in _frames(container, stream):
                for out in resampler.resample(frame):
                    piece = out.to_ndarray().reshape(-1)
                    held += piece.size
                    if held > limit:
                        raise AudioTooLong(held / SAMPLE_RATE, max_seconds, declared=False)
                    pieces.append(piece)
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except (AudioTooLong, AudioUnreadable):
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV has many errors for what is not audio
        raise AudioUnreadable(f"audio could not be decoded: {exc}") from None
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    samples: np.ndarray[Any, np.dtype[np.float32]] = np.concatenate(pieces).astype(np.float32)
    samples /= 32768.0
    return samples


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """The length the file's headers give, if any (a lie only makes decoding stop later, at the cap)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def _frames(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's frames, passing over damaged ones (as players do) instead of failing the note."""
    import av

    packets = container.demux(stream)
    for packet in packets:
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue
