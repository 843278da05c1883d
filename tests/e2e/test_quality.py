"""The default model does the job, in Russian and in English: plain questions with one fact each and a
two-turn memory check, answered through the real stack (POST /api/chat, then long polls) by the real
default model, scored against the same questions of the same model called directly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.quality import MAX_TOKENS, QUESTIONS, direct_answers, language_of, passes, score, stack_answers
from shared.config import ModelSettings
from tests.conftest import REAL_MODEL

pytestmark = pytest.mark.slow

# A score under this is a model that cannot do the job, however the stack compares with it.
FLOOR = 0.75


def test_the_stack_answers_as_well_as_the_model_alone_in_both_languages(
    client: TestClient, real_worker: Callable[..., Path]
) -> None:
    defaults = ModelSettings(_env_file=None)
    # Greedy, the shipped system prompt and sampling defaults: what a person gets, made repeatable.
    real_worker(TEMPERATURE="0", MAX_TOKENS=str(MAX_TOKENS))
    ours = stack_answers(client)
    alone = direct_answers(REAL_MODEL, defaults.system_prompt, os.cpu_count() or 2, defaults.repeat_penalty)

    report = "\n".join(
        f"{'ok  ' if passes(q, a) else 'FAIL'} {q.turns[-1]} -> {a!r} | direct: {d!r}"
        for q, a, d in zip(QUESTIONS, ours, alone, strict=True)
    )
    assert score(ours) >= score(alone), report
    assert score(ours) >= FLOOR, report
    # Each answer in the language it was asked in (translations aside).
    for question, answer in zip(QUESTIONS, ours, strict=True):
        if question.language is not None:
            assert language_of(answer) == question.language, report


def test_the_scorer_tells_right_from_wrong() -> None:
    capital = next(q for q in QUESTIONS if "Франции" in q.turns[-1])
    assert passes(capital, "Столица Франции — Париж.")
    assert not passes(capital, "The capital of France is Paris.")  # right fact, wrong language
    assert not passes(capital, "Столица Франции — Лион.")
    assert score(["" for _ in QUESTIONS]) == 0
