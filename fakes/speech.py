"""Voice notes made on this machine, as Telegram sends them: speech by espeak-ng and Festival (Debian
packages), silence, and broken files, encoded to Opus in OGG with PyAV (FFmpeg's libopus)."""

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


def russian_available() -> bool:
    return shutil.which("text2wave") is not None and Path(FESTIVAL_RUSSIAN).is_dir()


# espeak-ng's Russian is heard as German by Whisper unless the language is forced; Festival's Russian
# voice (Debian's festvox-ru) is heard as Russian.
FESTIVAL_RUSSIAN = "/usr/share/festival/voices/russian/msu_ru_nsh_clunits"


def _wav(text: str, words_per_minute: int, language: str) -> bytes:
    if language == "ru":
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as text_file:
            text_file.write(text)
            text_file.flush()
            return subprocess.run(
                ["text2wave", "-eval", "(voice_msu_ru_nsh_clunits)", text_file.name, "-o", "/dev/stdout"],
                check=True,
                capture_output=True,
            ).stdout
    return subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", str(words_per_minute), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout


def _spoken(text: str, words_per_minute: int, language: str) -> tuple[np.ndarray, int]:
    """The samples of `text` spoken, and their rate."""
    wav = _wav(text, words_per_minute, language)
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav_file:
        Path(wav_file.name).write_bytes(wav)
        with av.open(wav_file.name) as source:
            stream = source.streams.audio[0]
            chunks = [frame.to_ndarray().reshape(-1) for frame in source.decode(stream)]
            return np.concatenate(chunks), stream.rate


def speak(text: str, words_per_minute: int = 150, language: str = "en") -> bytes:
    """`text` spoken in English by espeak-ng (or in Russian, `language="ru"`, by Festival), as an
    OGG/Opus voice note."""
    return _encode(*_spoken(text, words_per_minute, language))


def speak_amid_noise(text: str, language: str = "en", around: float = 6.0, noise: float = 300) -> bytes:
    """`text` spoken after `around` seconds of a room's noise and followed by as many, the noise
    (white, of standard deviation `noise` in 16-bit samples) under the words too, as a microphone
    hears it. 300 is a quiet room, 1,000 a loud fan."""
    samples, rate = _spoken(text, 150, language)
    quiet = np.zeros(int(around * rate))
    whole = np.concatenate([quiet, samples.astype(np.float64), quiet])
    whole += np.random.default_rng(0).normal(0, noise, whole.size)
    return _encode(np.clip(whole, -32768, 32767), rate)


def noise(seconds: float, level: float = 300) -> bytes:
    """A voice note of `seconds` of a room's noise and no words (see speak_amid_noise)."""
    return _encode(np.random.default_rng(1).normal(0, level, int(RATE * seconds)), RATE)


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


def silent_flac(seconds: float, rate: int = 8_000, declared: bool = True) -> bytes:
    """`seconds` of digital silence as FLAC: an hour is well under a megabyte, and gigabytes once
    decoded. `declared=False` blanks the length in the file's header (FLAC allows "unknown")."""
    with tempfile.NamedTemporaryFile(suffix=".flac") as out_file:
        with av.open(out_file.name, "w", format="flac") as out:
            stream = out.add_stream("flac", rate=rate)
            stream.layout = "mono"
            block = np.zeros((1, rate * 10), dtype=np.int16)  # ten seconds at a time
            for start in range(0, int(seconds), 10):
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
                frame.sample_rate = rate
                frame.pts = start * rate
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        data = bytearray(Path(out_file.name).read_bytes())
    if not declared:
        # STREAMINFO follows "fLaC" and its 4-byte block header; its total-samples field is the low
        # 36 bits of the 8 bytes at offset 10 of the block.
        at = 8 + 10
        field = int.from_bytes(data[at : at + 8], "big") & ~((1 << 36) - 1)
        data[at : at + 8] = field.to_bytes(8, "big")
    return bytes(data)
