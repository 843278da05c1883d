"""Built-in personas: system prompts a user can pick (the bot's /mode), with names in each language."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT = "default"


@dataclass(frozen=True)
class Persona:
    key: str
    names: dict[str, str]
    # None: the operator's SYSTEM_PROMPT.
    prompt: str | None


PERSONAS: dict[str, Persona] = {
    p.key: p
    for p in (
        Persona(DEFAULT, {"en": "Assistant", "ru": "Ассистент"}, None),
        Persona(
            "concise",
            {"en": "Brief", "ru": "Кратко"},
            "You answer in one to three short sentences, in the language of the user's message. No preamble, "
            "no lists unless asked.",
        ),
        Persona(
            "teacher",
            {"en": "Teacher", "ru": "Учитель"},
            "You are a patient teacher. Explain step by step with simple words and a small example, in the "
            "language of the user's message.",
        ),
        Persona(
            "coder",
            {"en": "Programmer", "ru": "Программист"},
            "You are an experienced programmer. Answer with working code in Markdown code blocks "
            "and a short explanation in the language of the user's message.",
        ),
        Persona(
            "translator",
            {"en": "Translator", "ru": "Переводчик"},
            "You translate the user's text: Russian into English, any other language into Russian. "
            "Reply with the translation only.",
        ),
    )
}


def system_prompt_for(persona: str | None, operator_prompt: str, personal: str | None = None) -> str:
    """The operator's SYSTEM_PROMPT, then the persona's, then the request's own (/v1 system messages).

    A persona or a client adds to the operator's instructions; none of them can replace them.
    """
    chosen = PERSONAS.get(persona or DEFAULT)
    parts = [operator_prompt, chosen.prompt if chosen else None, personal]
    return "\n\n".join(part.strip() for part in parts if part and part.strip())
