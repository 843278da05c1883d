"""Audio is bounded before and while it is decoded: a small file that holds hours is refused without
its samples ever being held (worker.audio)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fakes import speech
from worker.audio import SAMPLE_RATE, AudioTooLong, AudioUnreadable, decode

ROOT = Path(__file__).resolve().parents[2]


def test_a_note_within_the_limit_is_decoded_whole(spoken: bytes) -> None:
    samples = decode(spoken, max_seconds=20)
    assert samples.dtype.name == "float32"
    assert len(samples) / SAMPLE_RATE == pytest.approx(speech.spoken_seconds(spoken), abs=0.1)
    assert 0 < float(abs(samples).max()) <= 1.0


def test_a_declared_length_over_the_limit_is_refused_before_decoding() -> None:
    hour = speech.silent_flac(3600)
    assert len(hour) < 1_000_000
    with pytest.raises(AudioTooLong, match="declares 3600 s, over 300 s"):
        decode(hour, max_seconds=300)


def test_a_length_the_header_hides_is_found_while_decoding() -> None:
    with pytest.raises(AudioTooLong, match="holds more than 300 s") as refused:
        decode(speech.silent_flac(3600, declared=False), max_seconds=300)
    # Decoding stopped at the limit, not at the end of the hour.
    assert refused.value.seconds < 301
    # Just under the limit is decoded.
    assert len(decode(speech.silent_flac(20, declared=False), max_seconds=30)) == 20 * SAMPLE_RATE


def test_what_is_not_audio_is_unreadable(spoken: bytes) -> None:
    with pytest.raises(AudioUnreadable):
        decode(speech.corrupt(spoken), max_seconds=20)
    with pytest.raises(AudioUnreadable):
        decode(b"not audio at all" * 100, max_seconds=20)


_PROBE = """
import json
import av  # loaded by the worker anyway; what is measured is the decoding
from fakes import speech
from shared.config import VoiceSettings
from worker.speech import Transcriber, VoiceFailed

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

notes = [speech.silent_flac(3600), speech.silent_flac(3600, declared=False)]
transcriber = Transcriber(VoiceSettings(_env_file=None))
before = peak_mb()
reasons = []
for note in notes:
    try:
        transcriber.transcribe(note, None)
    except VoiceFailed as exc:
        reasons.append(exc.reason.value)
print(json.dumps({"grew_mb": peak_mb() - before, "reasons": reasons, "sizes": [len(n) for n in notes]}))
"""


def test_an_hour_of_flac_costs_the_worker_less_than_100_mb() -> None:
    """Figure held: the one-hour FLAC (656 KB; ~230 MB of samples, over 600 MB peak decoded whole)
    moves the worker's peak memory by less than 100 MB, header or no header."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["reasons"] == ["voice_too_long", "voice_too_long"]
    assert max(result["sizes"]) < 1_000_000
    assert result["grew_mb"] < 100, result
