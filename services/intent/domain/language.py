"""Which of the supported languages (English, German, Spanish) a message is in, by counting
common words (listed in `data/stopwords.json`) and language-specific letters."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Literal, cast

Language = Literal["en", "de", "es"]
_STOPWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "stopwords.json"
_WORDS = re.compile(r"[a-zäöüßñáéíóúü]+")


@cache
def _stopwords() -> dict[Language, frozenset[str]]:
    data = json.loads(_STOPWORDS_FILE.read_text(encoding="utf-8"))
    return {cast(Language, lang): frozenset(words) for lang, words in data.items()}


def detect_language(text: str) -> Language:
    """The supported language with the most stopword hits; English when nothing tells."""
    words = _WORDS.findall(text.lower())
    scores = {lang: sum(w in stop for w in words) for lang, stop in _stopwords().items()}
    if any(c in text for c in "äöüßÄÖÜ"):
        scores["de"] += 2
    if any(c in text for c in "ñ¿¡áéíóú"):
        scores["es"] += 2
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > scores["en"] else "en"


@cache
def common_words() -> frozenset[str]:
    """The common words of all three languages: never a skill or a city."""
    return frozenset[str]().union(*_stopwords().values())
