"""Slot extraction: skills, location, seniority, years of experience, job title and limit, from a
message in English, German or Spanish, backed by the vocabularies."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.intent.domain.vocabulary import Vocabulary
from shared.contracts.intent import MAX_LIMIT, MAX_YEARS_EXPERIENCE, Slots

_TOKEN = re.compile(r"[\w+#./&'-]+")
_EDGE = "+#"  # characters that belong to a term (c++, c#) and so bound a match like letters do

# Words that end a job title when walking back from "role"/"Stelle"/"puesto" or forward after "als".
_TITLE_STOP = {
    "about",
    "for",
    "regarding",
    "re",
    "to",
    "the",
    "our",
    "a",
    "an",
    "this",
    "that",
    "on",
    "apply",
    "with",
    "in",
    "of",
    "open",
    "new",
    "its",
    "their",
    "your",
    "my",
    "we",
    "wegen",
    "der",
    "die",
    "das",
    "den",
    "dem",
    "unsere",
    "unserer",
    "unseren",
    "für",
    "zur",
    "zum",
    "über",
    "bezüglich",
    "mit",
    "und",
    "sobre",
    "para",
    "el",
    "la",
    "los",
    "las",
    "nuestro",
    "nuestra",
    "del",
    "al",
    "por",
    "con",
    "y",
    "en",
    "que",
    "who",
    "which",
    "oder",
    "o",
    "or",
    "and",
    "aus",
    "bei",
}
_TITLE_JOINERS = {"als", "de", "del", "como", "für", "as", "of"}
# "of" belongs to these titles: "Head of Data", "Director of Engineering".
_OF_TITLES = {"head", "director", "vp", "chief", "manager", "lead"}
_PERSON_NOUNS = re.compile(
    r"^(candidates?|developers?|engineers?|devs?|programmers?|people|folks|profiles?|analysts?|"
    r"scientists?|designers?|testers?|managers?|leads?|architects?|experts?|specialists?|"
    r"consultants?|administrators?|admins?|experience|kandidat\w*|entwickler\w*|personen|"
    r"ingenieur\w*|expert\w*|erfahrung|candidat[oa]s?|desarrollador\w*|ingenier[oa]s?|personas|"
    r"perfiles|programador\w*|experiencia|especialistas?|profesionales|leute|fachkräfte)$"
)
_LOCATIVE = {"in", "from", "near", "around", "at", "aus", "im", "bei", "nahe", "en", "de", "cerca"}
_YEARS = r"(?:years?|yrs?|jahre?n?|años|anos)"
_YEAR_PATTERNS = [
    re.compile(rf"(\d{{1,3}})\s*\+\s*{_YEARS}"),
    re.compile(
        rf"(?:at least|minimum(?: of)?|min\.?|mindestens|wenigstens|al menos|m[ií]nimo(?: de)?|"
        rf"como m[ií]nimo|more than|over|mehr als|über|m[aá]s de)\s+(\d{{1,3}})\s*{_YEARS}"
    ),
    re.compile(
        rf"(\d{{1,3}})\s*{_YEARS}\s+(?:of\s+|de\s+)?(?:[\w+#.-]+\s+){{0,2}}?"
        r"(?:experience|erfahrung|berufserfahrung|experiencia|exp)"
    ),
    re.compile(rf"(?:with|mit|con)\s+(\d{{1,3}})\s*{_YEARS}"),
]
_LIMIT_PATTERNS = [
    re.compile(r"\btop[\s-]+(\d{1,9})\b"),
    re.compile(
        r"\b(?:the|die|den|los|las)\s+(\d{1,9})\s+(?:best|besten|mejores|top|strongest|most)"
    ),
    re.compile(
        r"\b(?:up to|at most|max(?:imum)?|bis zu|höchstens|hasta|como m[aá]ximo)\s+(\d{1,9})\b"
    ),
]
_COUNT = re.compile(r"\b\d{1,9}\b")
# Seniority words that are ordinary words too ("staff the team", "lead the call") count only
# when a person noun or title noun follows.
_NEEDS_NOUN = {"staff", "lead", "principal", "head", "líder", "lider", "leitender", "leitende"}


def _is_person(word: str) -> bool:
    """A person noun, also as the last part of a compound: "Junior-Python-Entwicklern"."""
    return bool(_PERSON_NOUNS.match(word.rsplit("-", 1)[-1]))


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    text: str


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _terms_pattern(terms: set[str] | list[str]) -> re.Pattern[str]:
    alternation = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![\w{_EDGE}])(?:{alternation})(?![\w{_EDGE}])")


@dataclass(frozen=True)
class TooLarge:
    """A number the message names that is beyond what its slot allows: asked about, not used."""

    slot: str  # "limit" or "min_years_experience"
    said: int
    maximum: int


@dataclass(frozen=True)
class Reading:
    """The slots a message names, and a number too large for its slot, if there is one."""

    slots: Slots
    too_large: TooLarge | None = None


class SlotExtractor:
    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._skills = _terms_pattern(set(vocabulary.skills))
        self._cities = _terms_pattern(set(vocabulary.cities))
        self._seniority = _terms_pattern(set(vocabulary.seniority))
        self._markers = vocabulary.role_markers

    def extract(self, text: str) -> Slots:
        return self.read(text).slots

    def read(self, text: str) -> Reading:
        low = text.lower()
        title, low = self._job_title(low)
        years, low = self._first(_YEAR_PATTERNS, low)
        limit, low = self._limit(low)
        too_large = None
        if years is not None and years > MAX_YEARS_EXPERIENCE:
            too_large, years = TooLarge("min_years_experience", years, MAX_YEARS_EXPERIENCE), None
        if limit is not None and limit > MAX_LIMIT:
            too_large, limit = TooLarge("limit", limit, MAX_LIMIT), None
        slots = Slots(
            skills=self._skill_list(text, low),
            location=self._location(text, low),
            seniority=self._seniority_level(low),
            min_years_experience=years,
            job_title=title,
            limit=limit,
        )
        return Reading(slots, too_large)

    # -- job title ---------------------------------------------------------------------------

    def _is_title(self, words: list[str]) -> bool:
        joined = " ".join(words)
        if "head of" in joined:
            return True
        nouns = self.vocabulary.title_nouns
        return any(
            w in nouns
            or w.rstrip("s") in nouns
            or any(len(n) >= 5 and w.endswith(n) for n in nouns)
            for w in words
        )

    def _job_title(self, low: str) -> tuple[str | None, str]:
        tokens = [_Span(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(low)]
        for i, token in enumerate(tokens):
            word = token.text.rstrip(".:,;")
            if word not in self._markers:
                continue
            # Title after the marker: "Stelle als X", "puesto de X", "role of X".
            if i + 1 < len(tokens) and tokens[i + 1].text in _TITLE_JOINERS:
                span = self._walk(tokens, i + 2, step=1)
                if span is not None:
                    return span.text, _blank(low, token.start, span.end)
            # Title before the marker: "the Staff Backend Engineer role".
            span = self._walk(tokens, i - 1, step=-1)
            if span is not None:
                return span.text, _blank(low, span.start, token.end)
        return None, low

    def _walk(self, tokens: list[_Span], index: int, step: int) -> _Span | None:
        picked: list[_Span] = []
        while 0 <= index < len(tokens) and len(picked) < 6:
            word = tokens[index].text.rstrip(".:,;")
            before = tokens[index - 1].text if index > 0 else ""
            title_of = word == "of" and before in _OF_TITLES
            if (word in _TITLE_STOP and not title_of) or word.isdigit() or word in self._markers:
                break
            picked.append(tokens[index])
            if step > 0 and tokens[index].text[-1:] in ",.;:":
                break
            index += step
        if step < 0:
            picked.reverse()
        words = [t.text.rstrip(".:,;") for t in picked]
        if not picked or not self._is_title(words):
            return None
        return _Span(picked[0].start, picked[-1].end, " ".join(words))

    # -- numbers -----------------------------------------------------------------------------

    @staticmethod
    def _first(patterns: list[re.Pattern[str]], low: str) -> tuple[int | None, str]:
        for pattern in patterns:
            match = pattern.search(low)
            if match:  # blank the number only: "6 years of Django experience" keeps Django
                return int(match.group(1)), _blank(low, match.start(1), match.end(1))
        return None, low

    def _limit(self, low: str) -> tuple[int | None, str]:
        value, low = self._first(_LIMIT_PATTERNS, low)
        if value is not None:
            return (value if value > 0 else None), low
        for match in _COUNT.finditer(low):  # "25 devops candidates", "40 data analysts"
            following = self._next_words(low, match.end(), 4)
            if int(match.group()) > 0 and any(_is_person(w) for w in following):
                return int(match.group()), _blank(low, match.start(), match.end())
        return None, low

    # -- vocabulary terms --------------------------------------------------------------------

    @staticmethod
    def _next_words(low: str, end: int, count: int) -> list[str]:
        return [w.strip(".,;:") for w in _TOKEN.findall(low[end : end + 80])][:count]

    @staticmethod
    def _previous_word(low: str, start: int) -> str:
        words = _TOKEN.findall(low[max(0, start - 30) : start])
        return words[-1] if words else ""

    def _skill_list(self, text: str, low: str) -> list[str]:
        found: list[str] = []
        for match in self._skills.finditer(low):
            alias = match.group()
            if alias in self.vocabulary.ambiguous_skills:
                written = text[match.start() : match.end()]
                following = self._next_words(low, match.end(), 2)
                followed_by_noun = any(_is_person(w) for w in following)
                if written == alias and not followed_by_noun:
                    continue  # "let's go", "spring": an ordinary word, not the technology
            canonical = self.vocabulary.skills[alias]
            if canonical not in found:
                found.append(canonical)
        return found

    def _location(self, text: str, low: str) -> str | None:
        fallback: str | None = None
        for match in self._cities.finditer(low):
            if self._previous_word(low, match.start()) in _LOCATIVE:
                return match.group()
            written = text[match.start() : match.end()]
            if fallback is None and written[:1].isupper():
                fallback = match.group()
        return fallback

    def _seniority_level(self, low: str) -> str | None:
        for match in self._seniority.finditer(low):
            word = match.group()
            if word in _NEEDS_NOUN:
                nearby = self._next_words(low, match.end(), 3)
                nearby.append(self._previous_word(low, match.start()))  # "ingenieros staff"
                nouns = self.vocabulary.title_nouns
                if not any(_is_person(w) or w in nouns for w in nearby):
                    continue
            return self.vocabulary.seniority[word]
        return None
