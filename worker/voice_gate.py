"""Which parts of a voice note hold speech, so that only those reach Whisper.

Given silence or hiss, Whisper writes words nobody said ("Thank you.", «Продолжение следует…»), so
something must cut them out first. faster-whisper's own filter (Silero, run by ONNX Runtime) holds
~27 MB of the worker for as long as the speech model is loaded (measured here, Whisper base alone:
212 → 185 MB without it), which on a 1 GB box is the margin between fitting and not. WebRTC's
detector (band energies scored by a small fixed Gaussian mixture, in C, no model file) holds well
under 1 MB, takes microseconds a frame, and tells a voice from steady noise.

Its verdict on one 30 ms frame is noisy, so frames are smoothed over a window, short gaps inside a
sentence are bridged, and each stretch of speech keeps a margin so that no word loses its edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.audio import SAMPLE_RATE

# WebRTC's detector takes 10, 20 or 30 ms frames of 16-bit samples at 8, 16, 32 or 48 kHz.
FRAME_SECONDS = 0.03
_FRAME = int(SAMPLE_RATE * FRAME_SECONDS)
# 0 lets the most through, 3 the least: 3 still kept every word of the test notes (both voices)
# and let no hiss or hum through.
AGGRESSIVENESS = 3
# A frame is speech when at least half of the 300 ms around it was heard as speech.
_WINDOW_FRAMES = 10
_WINDOW_SHARE = 0.5
# A pause shorter than this is a breath inside a sentence, not the end of speech.
_BRIDGE_SECONDS = 1.0
# Kept around each stretch of speech: word onsets and endings are quiet.
_MARGIN_SECONDS = 0.3

Samples = np.ndarray[Any, np.dtype[np.float32]]


def speech_spans(samples: Samples) -> list[tuple[int, int]]:
    """The stretches of `samples` (16 kHz floats in [-1, 1]) that hold speech, as [start, end) sample
    indices, in order and apart from each other."""
    import webrtcvad

    frames = len(samples) // _FRAME
    if frames == 0:
        return []
    detector = webrtcvad.Vad(AGGRESSIVENESS)
    pcm = (np.clip(samples[: frames * _FRAME], -1.0, 1.0) * 32767).astype("<i2").tobytes()
    size = _FRAME * 2
    voiced = np.fromiter(
        (detector.is_speech(pcm[i * size : (i + 1) * size], SAMPLE_RATE) for i in range(frames)),
        dtype=bool,
        count=frames,
    )
    share = np.convolve(voiced.astype(np.float32), np.ones(_WINDOW_FRAMES) / _WINDOW_FRAMES, mode="same")
    speech = share >= _WINDOW_SHARE
    spans: list[tuple[int, int]] = []
    bridge = int(_BRIDGE_SECONDS / FRAME_SECONDS)
    for start, end in _runs(speech):
        if spans and start - spans[-1][1] <= bridge:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    margin = int(_MARGIN_SECONDS * SAMPLE_RATE)
    return [
        (max(0, start * _FRAME - margin), min(len(samples), end * _FRAME + margin)) for start, end in spans
    ]


def keep_speech(samples: Samples) -> Samples:
    """Only the speech of `samples`, its stretches joined end to end (empty when there is none)."""
    spans = speech_spans(samples)
    if not spans:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([samples[start:end] for start, end in spans])


def _runs(flags: np.ndarray[Any, np.dtype[np.bool_]]) -> list[tuple[int, int]]:
    """The [start, end) index ranges where `flags` is true."""
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))
