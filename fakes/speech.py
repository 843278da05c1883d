"""Voice notes made on this machine, as Telegram sends them: speech by espeak-ng (a Debian
package), silence, and broken files, encoded to Opus in OGG with PyAV (FFmpeg's libopus)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

RATE = 48_000


def _encode(samples: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit samples at `rate` as Opus in an OGG container (a Telegram voice note)."""
    with tempfile.NamedTemporaryFile(suffix=".ogg") as out_file:
        with av.open(out_file.name, "w", format="ogg") as out:
            stream = out.add_stream("libopus", rate=RATE)
            stream.layout = "mono"
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            frame = av.AudioFrame.from_ndarray(
                samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono"
            )
            frame.sample_rate = rate
            for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
                for packet in stream.encode(resampled):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        return Path(out_file.name).read_bytes()


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, words_per_minute: int = 150) -> bytes:
    """`text` spoken by espeak-ng (English), as an OGG/Opus voice note."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", str(words_per_minute), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav_file:
        Path(wav_file.name).write_bytes(wav)
        with av.open(wav_file.name) as source:
            stream = source.streams.audio[0]
            chunks = [frame.to_ndarray().reshape(-1) for frame in source.decode(stream)]
            rate = stream.rate
    return _encode(np.concatenate(chunks), rate)


def silence(seconds: float) -> bytes:
    """A voice note of `seconds` of quiet hiss (what a pocket records)."""
    rng = np.random.default_rng(0)
    return _encode(rng.normal(0, 3, int(RATE * seconds)), RATE)


def spoken_seconds(audio: bytes) -> float:
    with tempfile.NamedTemporaryFile(suffix=".ogg") as file:
        Path(file.name).write_bytes(audio)
        with av.open(file.name) as source:
            return sum(frame.samples for frame in source.decode(audio=0)) / RATE


def corrupt(audio: bytes) -> bytes:
    """The OGG's first bytes kept, the rest scrambled: a file no decoder can read."""
    return b"OggS" + bytes((byte * 7 + 13) % 256 for byte in audio[4:2000])
