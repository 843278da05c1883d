"""The voice gate (worker/voice_gate.py): only the speech of a note reaches Whisper, noise alone is no
speech, and no neural filter is loaded for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fakes import speech
from shared.enums import FinishReason
from tests.voice.conftest import QUESTION, RUSSIAN_QUESTION
from worker.audio import SAMPLE_RATE, decode
from worker.speech import Transcriber, VoiceFailed
from worker.voice_gate import keep_speech, speech_spans

ROOT = Path(__file__).resolve().parents[2]
AROUND = 6.0  # seconds of noise before the words and after them


@pytest.mark.parametrize("level", [300, 1000])
@pytest.mark.parametrize(
    ("text", "language", "word"), [(QUESTION, "en", "capital"), (RUSSIAN_QUESTION, "ru", "столиц")]
)
def test_only_the_speech_of_a_note_reaches_whisper(
    transcriber: Transcriber, text: str, language: str, word: str, level: float
) -> None:
    note = speech.speak_amid_noise(text, language, around=AROUND, noise=level)
    samples = decode(note, 60)
    words_end = len(samples) / SAMPLE_RATE - AROUND
    spans = [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in speech_spans(samples)]
    # One stretch, around the words: the noise before and after them is left out, bar the margins.
    assert len(spans) == 1, spans
    (start, end) = spans[0]
    assert AROUND - 0.6 <= start <= AROUND + 0.3, spans
    assert words_end - 0.8 <= end <= words_end + 0.6, spans
    heard = transcriber.transcribe(note, language)
    assert word in heard.text.lower()
    assert heard.duration_seconds == pytest.approx(len(samples) / SAMPLE_RATE, abs=0.05)


@pytest.mark.parametrize(
    "note",
    [speech.silence(4), speech.noise(5, level=300), speech.noise(5, level=1000)],
    ids=["hiss", "quiet room", "loud fan"],
)
def test_noise_alone_is_no_speech(transcriber: Transcriber, note: bytes) -> None:
    assert len(keep_speech(decode(note, 60))) == 0
    # Whisper is not asked: given this hiss, base writes "You" (heard here without the gate).
    with pytest.raises(VoiceFailed) as empty:
        transcriber.transcribe(note, None)
    assert empty.value.reason == FinishReason.VOICE_EMPTY
    assert "no speech in" in str(empty.value)


def test_hearing_a_note_loads_no_neural_voice_filter(spoken: bytes) -> None:
    """faster-whisper's own filter runs Silero in ONNX Runtime, ~27 MB of the worker for as long as
    the speech model is loaded: a note heard in a process of its own never imports it."""
    script = (
        "import sys\n"
        "from shared.config import VoiceSettings\n"
        "from worker.speech import Transcriber\n"
        "from tests.conftest import MODELS\n"
        "heard = Transcriber(VoiceSettings(_env_file=None), download_root=MODELS)"
        ".transcribe(sys.stdin.buffer.read(), 'en')\n"
        "print(heard.text)\n"
        "print(sorted(m for m in sys.modules if m.startswith('onnxruntime')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=spoken, capture_output=True, check=True, timeout=300, cwd=ROOT
    )
    text, modules = done.stdout.decode().strip().splitlines()[-2:]
    assert "capital" in text.lower()
    assert modules == "[]"
