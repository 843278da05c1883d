"""Words as the document index knows them: lower case, yo as ye, each cut to its stem (Snowball's
Russian stemmer for Cyrillic words, its English one for Latin), common words left out.

The same terms are written for a passage and asked for by a question, in SQLite and PostgreSQL
alike (both index these terms as they are): «документами» and «документ» meet, as do "reading"
and "read", whichever database holds them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-я]")

# Words too common to say what a passage is about (a question is mostly made of them).
# fmt: off
_COMMON = frozenset(
    [
        "и", "в", "во", "не", "что", "он", "на", "я", "с", "со", "как", "а", "то", "все", "она",
        "так", "его", "но", "да", "ты", "к", "у", "же", "вы", "за", "бы", "по", "только", "ее",
        "мне", "было", "вот", "от", "меня", "еще", "нет", "о", "из", "ему", "теперь", "когда",
        "даже", "ну", "вдруг", "ли", "если", "уже", "или", "ни", "быть", "был", "него", "до", "вас",
        "нибудь", "опять", "уж", "вам", "ведь", "там", "потом", "себя", "ничего", "ей", "может",
        "они", "тут", "где", "есть", "надо", "ней", "для", "мы", "тебя", "их", "чем", "была", "сам",
        "чтоб", "без", "будто", "чего", "раз", "тоже", "себе", "под", "будет", "ж", "тогда", "кто",
        "этот", "того", "потому", "этого", "какой", "совсем", "ним", "здесь", "этом", "один",
        "почти", "мой", "тем", "чтобы", "нее", "сейчас", "были", "куда", "зачем", "всех", "никогда",
        "можно", "при", "наконец", "два", "об", "другой", "хоть", "после", "над", "больше", "тот",
        "через", "эти", "нас", "про", "всего", "них", "какая", "много", "разве", "три", "эту",
        "моя", "впрочем", "хорошо", "свою", "этой", "перед", "иногда", "лучше", "чуть", "том",
        "нельзя", "такой", "им", "более", "всегда", "конечно", "всю", "между", "это", "как",
        "какие", "каких", "каком", "скажи", "расскажи", "a", "an", "the", "and", "or", "but", "if",
        "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "is", "are", "was", "were",
        "be", "been", "being", "it", "its", "this", "that", "these", "those", "what", "which",
        "who", "whom", "whose", "when", "where", "why", "how", "do", "does", "did", "done", "have",
        "has", "had", "not", "no", "yes", "can", "could", "would", "should", "will", "shall", "may",
        "might", "must", "about", "into", "over", "under", "than", "then", "there", "here", "so",
        "such", "very", "just", "also", "me", "my", "we", "our", "you", "your", "he", "him", "his",
        "she", "her", "they", "them", "their", "i", "tell", "please", "такое", "такая", "такие",
    ]
)
# fmt: on


@lru_cache(maxsize=2)
def _stemmer(language: str) -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer(language)


def terms(text: str, stem: bool = True) -> list[str]:
    """The stems of the words of `text` that say something, in order (repeats kept); with `stem`
    false, the words themselves (what the benchmark compares stemming with)."""
    words = [word.replace("ё", "е") for word in _WORD.findall(text.lower())]
    kept = [word for word in words if word not in _COMMON and (len(word) > 1 or word.isdigit())]
    if not stem:
        return kept
    russian, english = _stemmer("russian"), _stemmer("english")
    return [
        (russian if _CYRILLIC.search(word) else english).stemWord(word) if not word.isdigit() else word
        for word in kept
    ]


def query_terms(text: str, most: int = 32) -> list[str]:
    """The distinct terms of a question, in order, at most `most` (a pasted page is not a question)."""
    return list(dict.fromkeys(terms(text)))[:most]
