"""Voice notes: the real-time factor of transcription through the stack against faster-whisper
called directly, on notes of 5, 30 and 120 seconds spoken by espeak-ng, for each speech model
(base, the default, multilingual; tiny.en, English only), and what each adds to the worker's memory.

The real-time factor is seconds of work per second of audio (0.1: a minute's note in six
seconds). Through the stack it includes the upload, the queue, the worker's database reads and
writes and the answer's way back (/v1/audio/transcriptions, which waits for the text).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx

from bench.harness import KEY, ROOT, THREADS, Figure, stack
from fakes import speech

# Sentences to read aloud, none repeated within two minutes (espeak-ng reads ~3 words a second):
# Whisper takes text that repeats itself for a decoding gone wrong and decodes it again and again
# (its compression-ratio check), which real speech does not make it do.
_SENTENCES = [
    "The weather this week will be mild, with some rain on Tuesday.",
    "Please remember to buy bread, milk and a dozen eggs on the way home.",
    "The meeting about the new project moves to Thursday at ten in the morning.",
    "My sister is learning to play the violin and practises every evening.",
    "We took the early train to the coast and walked along the cliffs.",
    "The library closes at six, so return the books before then.",
    "Can you tell me how long it takes to boil an egg properly?",
    "The garden needs water, and the tomatoes are almost ready to pick.",
    "Our flight was delayed by two hours because of the fog.",
    "He fixed the bicycle chain with a small tool he keeps in his bag.",
    "The museum has a new exhibition about ancient maps and sailors.",
    "I would like a table for four near the window, if possible.",
    "The children built a snowman with a carrot for a nose.",
    "Turn left at the bakery and the post office is on your right.",
    "She wrote a letter to her grandmother about the summer holidays.",
    "The printer on the third floor has run out of paper again.",
    "Let us meet at the café across the street after work.",
    "The river rose quickly after three days of heavy rain.",
    "Our neighbour's dog barks whenever the postman comes by.",
    "Add a pinch of salt and stir the soup for another minute.",
    "The concert starts at eight, and the doors open an hour earlier.",
    "I left my umbrella on the bus, and of course it started raining.",
    "The old bridge over the canal will be repaired next spring.",
    "Which of these two jackets do you think looks warmer?",
    "The students presented their science projects to the whole school.",
    "A cup of tea and a quiet book are all I need tonight.",
    "The mechanic said the car will be ready by Friday afternoon.",
    "We counted eleven different birds in the park this morning.",
    "The recipe asks for three apples, some butter and a little cinnamon.",
    "Remember to switch off the lights when you leave the office.",
]
_WORDS_PER_SECOND = 3.2


def spoken_note(seconds: int) -> tuple[bytes, float]:
    """About `seconds` of speech as a Telegram voice note, and its exact length."""
    words = " ".join(_SENTENCES).split()
    audio = speech.speak(" ".join(words[: round(seconds * _WORDS_PER_SECOND)]))
    return audio, speech.spoken_seconds(audio)


class DirectEngine:
    """faster-whisper itself, as the worker configures it (int8, the same threads, greedy, VAD)."""

    def __init__(self, name: str) -> None:
        from faster_whisper import WhisperModel

        from worker.speech import locate

        self.model = WhisperModel(
            locate(name, ROOT / "data" / "models"),
            device="cpu",
            compute_type="int8",
            cpu_threads=int(THREADS),
        )

    def transcribe(self, audio: bytes) -> str:
        segments, _info = self.model.transcribe(
            io.BytesIO(audio), beam_size=1, vad_filter=True, condition_on_previous_text=False
        )
        return " ".join(segment.text.strip() for segment in segments)


def _through_stack(api: str, audio: bytes) -> str:
    response = httpx.post(
        f"{api}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": ("note.ogg", audio, "audio/ogg")},
        data={"model": "whisper-1"},
        timeout=600,
    )
    response.raise_for_status()
    return str(response.json()["text"])


MODELS = ("base", "tiny.en")


def figures(workdir: Path, runs: int, lengths: tuple[int, ...]) -> list[Figure]:
    notes = {seconds: spoken_note(seconds) for seconds in lengths}
    return [figure for name in MODELS for figure in _figures(name, workdir / name, runs, notes)]


def _figures(name: str, workdir: Path, runs: int, notes: dict[int, tuple[bytes, float]]) -> list[Figure]:
    lengths = list(notes)
    direct = DirectEngine(name)
    results = []
    with stack(workdir, STT_MODEL=name) as api:
        _through_stack(api, notes[lengths[0]][0])  # the worker loads its speech model on the first note
        direct.transcribe(notes[lengths[0]][0])
        for seconds, (audio, duration) in notes.items():
            ours, baseline = [], []
            heard = ""
            for _ in range(runs):
                began = time.perf_counter()
                heard = _through_stack(api, audio)
                ours.append((time.perf_counter() - began) / duration)
                began = time.perf_counter()
                direct.transcribe(audio)
                baseline.append((time.perf_counter() - began) / duration)
            figure = Figure(
                f"Transcription of a {seconds} s voice note, {name} "
                "(real-time factor, /v1 vs faster-whisper alone)",
                ours,
                baseline,
                "s per s of audio",
                "≤ 1.25× the engine",
                "stack ÷ engine",
                paired=True,
                extra={"audio": f"{duration:.1f} s", "words heard": str(len(heard.split()))},
            )
            figure.passed = figure.ratio <= 1.25
            results.append(figure)
    return results
