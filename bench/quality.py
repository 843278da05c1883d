"""Does the default model do the job: plain questions with one checkable fact each, in Russian and in
English, and a two-turn memory check, each answer expected in the language it was asked in.

Asked twice in one run, greedy: through the stack (POST /api/chat, then the long poll on its status,
as the web page and the bot follow answers) and of the same model called directly with
llama-cpp-python's `create_chat_completion`, the same system prompt and sampling. The stack must
score no lower: whatever it adds (the chat template, history, sampling, stop tokens) must not hurt.
The test suite asserts that (tests/e2e/test_quality.py); `make bench` reports both scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FINAL = ("finished", "failed", "canceled")
MAX_TOKENS = 96


@dataclass(frozen=True)
class Question:
    turns: tuple[str, ...]  # the last is the one whose answer is checked
    expect: tuple[str, ...]  # any of these, case-insensitive, in the answer
    language: str | None  # "ru" or "en": the answer's language; None for a translation


QUESTIONS = (
    Question(("Сколько будет 17 умножить на 3?",), ("51",), "ru"),
    Question(("Какая столица Франции?",), ("париж",), "ru"),
    Question(("Какая столица Японии?",), ("токио",), "ru"),
    Question(("В каком году человек впервые полетел в космос?",), ("1961",), "ru"),
    Question(("Сколько дней в високосном году?",), ("366",), "ru"),
    Question(("Переведи на английский: «Кошка спит на диване».",), ("cat",), None),
    Question(("Кто написал роман «Война и мир»?",), ("толст",), "ru"),
    Question(("Напиши одно короткое предложение о кошках.",), ("кош",), "ru"),
    Question(("What is 12 + 30?",), ("42",), "en"),
    Question(("What is the capital of Italy?",), ("rome",), "en"),
    Question(("How many days are there in a leap year?",), ("366",), "en"),
    Question(("In what year did the Second World War end?",), ("1945",), "en"),
    Question(("Who wrote the novel 'War and Peace'?",), ("tolstoy",), "en"),
    Question(("Translate into Russian: 'The weather is nice today.'",), ("погод",), None),
    Question(("Привет! Меня зовут Алексей.", "Как меня зовут?"), ("алексе",), "ru"),
    Question(("Hi! My name is Margaret.", "What is my name?"), ("margaret",), "en"),
)

_CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
_LATIN = re.compile("[a-z]", re.IGNORECASE)


def language_of(text: str) -> str:
    """ru or en, by which alphabet most of the answer's letters are in."""
    return "ru" if len(_CYRILLIC.findall(text)) > len(_LATIN.findall(text)) else "en"


def passes(question: Question, answer: str) -> bool:
    """The fact is in the answer, and the answer is in the question's language."""
    said = answer.lower().replace("ё", "е")
    if not any(expected in said for expected in question.expect):
        return False
    return question.language is None or language_of(answer) == question.language


def score(answers: list[str]) -> float:
    """The share of QUESTIONS whose answer passes."""
    return sum(passes(q, a) for q, a in zip(QUESTIONS, answers, strict=True)) / len(QUESTIONS)


def _follow(http: Any, task_id: str) -> dict[str, Any]:
    """The task's final status, waited for with long polls (ETag + wait), as the page does."""
    tag: str | None = None
    while True:
        headers = {"If-None-Match": tag} if tag else {}
        response = http.get(f"/api/status/{task_id}", params={"wait": 30}, headers=headers)
        if response.status_code == 304:
            continue
        response.raise_for_status()
        tag = response.headers["ETag"]
        status: dict[str, Any] = response.json()
        if status["status"] in FINAL:
            return status


def stack_answers(http: Any, user_prefix: str = "quality") -> list[str]:
    """Each question asked of the stack (an httpx client of the gateway, or a test's TestClient) in a
    conversation of its own; the last turns' answers."""
    answers = []
    for n, question in enumerate(QUESTIONS):
        answer = ""
        for text in question.turns:
            body = {"user_id": f"{user_prefix}-{n}", "text": text}
            accepted = http.post("/api/chat", json=body)
            accepted.raise_for_status()
            status = _follow(http, accepted.json()["task_id"])
            answer = status["answer"] if status["status"] == "finished" else f"[{status['status']}]"
        answers.append(answer)
    return answers


def direct_answers(model: Path, system_prompt: str, threads: int, repeat_penalty: float) -> list[str]:
    """The same questions of the same model, through llama-cpp-python's own chat completion."""
    from llama_cpp import Llama

    llm = Llama(str(model), n_ctx=2048, n_threads=threads, verbose=False, seed=1)
    try:
        answers = []
        for question in QUESTIONS:
            messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
            answer = ""
            for text in question.turns:
                messages.append({"role": "user", "content": text})
                reply: Any = llm.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    temperature=0,
                    max_tokens=MAX_TOKENS,
                    repeat_penalty=repeat_penalty,
                )
                answer = reply["choices"][0]["message"]["content"] or ""
                messages.append({"role": "assistant", "content": answer})
            answers.append(answer)
        return answers
    finally:
        llm.close()
