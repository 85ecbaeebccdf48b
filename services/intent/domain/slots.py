"""Slot extraction: skills, location, seniority, years of experience, job title, limit, country,
remote, the skills a message rules out and the follow-ups it asks for, from a message in English,
German or Spanish, backed by the vocabularies."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.intent.domain.follow_up_slot import follow_up_request
from services.intent.domain.language import common_words
from services.intent.domain.typos import TypoIndex
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
    # what follows a title in a status question: "the X campaign going", "la campaña de X hoy"
    "going",
    "doing",
    "now",
    "yet",
    "so",
    "please",
    "pls",
    "jetzt",
    "gerade",
    "ahora",
    "hoy",
    # what leads to or trails a title with no "role" word: "thema X job", "por lo del X"
    "thema",
    "betreff",
    "bzgl",
    "lo",
    "bitte",
    "danke",
    "thanks",
    "gracias",
    "porfa",
    # years of experience are no part of a title: "3-5 jahre, growth engineer stelle"
    "years",
    "yrs",
    "jahre",
    "jahren",
    "años",
    "experience",
    "erfahrung",
    "experiencia",
    # whose mails and to whom: "auf meine Backend Entwickler Mails", "a mis correos de"
    "mein",
    "meine",
    "meinen",
    "meiner",
    "unser",
    "auf",
    "von",
    "vom",
    "zu",
    "mis",
    "mi",
    "nuestros",
    "nuestras",
    # verbs after a title, German word order mostly: "die Mails für den X kamen zurück"
    "is",
    "are",
    "was",
    "were",
    "has",
    "have",
    "got",
    "get",
    "did",
    "ist",
    "sind",
    "war",
    "waren",
    "wurde",
    "wurden",
    "hat",
    "haben",
    "kam",
    "kamen",
    "schon",
    "noch",
    "zurück",
    "raus",
    "han",
    "ha",
    "hay",
    "son",
    "fue",
    "fueron",
    "tuvo",
    "tuvieron",
    "ya",
    # what a campaign is told to do after its title: "Kampagne für Data Engineer starten"
    "starten",
    "anlegen",
    "erstellen",
    "aufsetzen",
}
_TITLE_JOINERS = {"als", "de", "del", "como", "für", "as", "of"}
# "the role is X", "die Stelle ist X", "el puesto es X": the title follows the marker.
_TITLE_IS = {"is", "ist", "es"}
_GERMAN_ARTICLES = {"der", "die", "den", "dem"}
# After these the title may follow the marker straight away: "wegen der Stelle Backend Engineer",
# "por la vacante Frontend Developer", "el puesto Data Engineer".
_DIRECT_ARTICLES = _GERMAN_ARTICLES | {"el", "la", "del", "al"}
_ARTICLES = _GERMAN_ARTICLES | {"the", "el", "la", "los", "las", "my", "our", "meine", "meinen",
                                 "unsere", "unseren", "mis", "nuestros", "nuestras"}  # fmt: skip
# A German past participle ends a title: "geantwortet", "geöffnet", "reagiert" (not in titles).
_PARTICIPLE = re.compile(r"^(?:ge\w{3,}(?:t|en)|reagiert|zurückgekommen|angekommen)$")
# Words that name a job with no "role" word after them: "por lo del growth engineer", "thema
# platform engineer", "betreff: data engineer". A title found so must be one the vocabulary knows.
_TITLE_CUE = re.compile(
    r"(?<![\w])(?:por lo del?|lo del?|thema|betreff:?|bzgl\.?|re:|"
    r"en relaci[oó]n (?:con|al)(?: el| la)?|"
    # a campaign named by its job: "start a campaign for SRE", "Kampagne für Data Engineer"
    r"(?:campaign|kampagne|campa[ñn]a) (?:for|für|para|de))(?![\w])"
)
# Role markers that are a search for people too: "Berlin, suche Java Entwickler" names no job.
# A preposition straight before a title the vocabulary knows, the title ending its clause: "schreib
# den Swift Leuten wegen iOS Developer", "por backend engineer", "para devops engineer".
_BARE_CUE = re.compile(r"(?<![\w])(?:wegen|für|fuer|por|para)(?![\w])")
_SAME_PLURAL = {"entwickler", "programmierer", "berater", "leiter", "wissenschaftler"}
_SEARCH_WORDS = {"search", "suche", "búsqueda", "busqueda"}
_CAMPAIGN_CUE = re.compile(r"campaign|kampagne|campa[ñn]a")
# "of" belongs to these titles: "Head of Data", "Director of Engineering".
_OF_TITLES = {"head", "director", "vp", "chief", "manager", "lead"}
_PERSON_NOUNS = re.compile(
    r"^(candidates?|developers?|engineers?|devs?|programmers?|people|folks|profiles?|analysts?|"
    r"scientists?|designers?|testers?|managers?|leads?|architects?|experts?|specialists?|"
    r"consultants?|administrators?|admins?|experience|kandidat\w*|entwickler\w*|personen|"
    r"ingenieur\w*|entwikler\w*|expert\w*|erfahrung|candidat[oa]s?|desarr?ollador\w*|ingenier[oa]s?|personas|"
    r"perfiles|programador\w*|experiencia|especialistas?|profesionales|leute|fachkräfte|ppl|peeps|"
    r"gente|leuten)$"
)
# Words after which an ambiguous skill word is the skill: "with flutter", "who know spark".
_SKILL_CUES = {"with", "w/", "know", "knows", "knowing", "using", "mit", "kennen", "kann", "kennt",
               "können", "beherrscht", "con", "sabe", "saben", "usando", "conoce", "conocen",
               "domina", "dominan", "maneja", "manejan"}  # fmt: skip
# Words after which an ambiguous skill word is the skill: "kandidaten die go können".
_SKILL_AFTER_CUES = {"können", "kennen", "beherrschen", "kann", "kennt"}
# Words that, with "de" after them, name people by a skill: "alguien de swift", "nadie de go".
_SOMEONE = {"alguien", "nadie", "algún", "algun", "alguno", "alguna"}
_LOCATIVE = {"in", "from", "near", "around", "at", "aus", "im", "bei", "nahe", "en", "de", "cerca"}
_YEARS = r"(?:years?|yrs?|jahre?n?|años|anos)"
# A range of years ("3-5 years", "3 bis 5 Jahre", "entre 3 y 5 años"): its lower bound is the
# minimum; \u2013 is the en dash that word processors put between the two numbers.
_YEAR_RANGE = re.compile(
    rf"(\d{{1,2}})\s*(?:-|\u2013|to|bis|a|y|und|and)\s*(\d{{1,2}})\s*\+?\s*{_YEARS}"
)
_YEAR_PATTERNS = [
    re.compile(rf"(\d{{1,3}})\s*\+\s*{_YEARS}"),
    re.compile(
        rf"(?:at least|minimum(?: of)?|min\.?|mind\.?|mindestens|ab|m[ií]n\.|wenigstens|"
        rf"al menos|m[ií]nimo(?: de)?|"
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
        r"\b(?:up to|at most|max(?:imum|imal|\.)?|m[aá]ximo|bis zu|höchstens|hasta|como m[aá]ximo)"
        r"\s+(\d{1,9})\b"
    ),
]
_COUNT = re.compile(r"\b\d{1,9}\b")
# Words that name a campaign the way "role" names a job: "how is the Data Engineer campaign doing",
# "wie läuft die Kampagne für Backend Engineer". Used only to read a status question.
# The mails a campaign sends name it too: "any replies to the data analyst emails", "Antworten auf
# meine SRE Mails", "los correos del sre".
CAMPAIGN_MARKERS = frozenset(
    {"campaign", "campaigns", "kampagne", "kampagnen", "campaña", "campana", "campañas",
     "emails", "email", "e-mails", "mails", "mail", "outreach", "messages", "nachrichten",
     "anschreiben", "correos", "correo", "mensajes", "e-mail"}
)  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+")
# Words that join two skills into a list: "python or go", "java und kotlin", "react o vue".
_JOINERS = {"and", "or", "&", "/", "und", "oder", "sowie", "y", "e", "o", "u", "ni", "nor", "noch",
            "plus"}  # fmt: skip
# Words that rule out the skills after them: "not Java", "ohne PHP", "sin Java", "except java".
_NEGATION = re.compile(
    r"(?<![\w])(?:but not|aber nicht|pero no|other than|apart from|nada de|except(?: for)?|"
    r"nobody|no-?one|no one|niemand(?:en|em)?|nadie|"
    r"(?:we )?(?:don'?t|do not) want|no (?:queremos|quiero|buscamos)|"
    r"excluding|exclude|without|w/o|minus|not|no|nor|nicht|kein(?:e[nmrs]?)?|ohne|au(?:ß|ss)er|"
    r"ausgenommen|sin|excepto|salvo|menos|ni|quitando|excluyendo)(?![\w])"
)
# Words that may stand between a negation and its skill: "except those with azure", "ohne Leute
# mit Java", "salvo los que saben react", "sin experiencia en java".
_NEGATION_FILLER = {"with", "any", "anyone", "one", "someone", "people", "who", "that", "knows",
                    "know", "knowing", "using", "experience", "the", "those", "them", "in", "mit",
                    "denen", "die", "der", "den", "leute", "kennen", "können", "erfahrung", "con",
                    "de", "del", "en", "los", "las", "que", "sepan", "saben", "sabe", "tengan",
                    "tenga", "experiencia", "gente", "perfiles", "a", "al"}  # fmt: skip
# Words after an excluded skill that still belong to it: "no php people", "ohne Java-Erfahrung".
_SKILL_TAIL = {"experience", "erfahrung", "experiencia", "people", "folks", "leute", "gente",
               "perfiles", "skills", "kenntnisse", "stuff"}  # fmt: skip
# On-site, and remote, work: "fully remote", "remoto", "Home-Office"; "onsite", "vor Ort",
# "presencial", "no remote".
_REMOTE_WORDS = r"(?:remote\w*|remot[oa]s?|teletrabajo|home[- ]?office)"
_ONSITE = re.compile(
    r"(?<![\w-])(?:on-?site|on site|in[- ]office|in the office|vor[- ]ort|präsenz\w*"
    r"|presencial(?:es)?|en (?:la )?oficina"
    rf"|(?:no|not|kein|keine|nicht|sin|nada de)\s+{_REMOTE_WORDS}"
    # "que no quieran remoto", "no quieren trabajar en remoto", "don't want remote"
    r"|(?:no|not|don'?t|do not|nicht)\s+(?:quier\w*|busc\w*|acept\w*|want\w*|wollen|will)"
    rf"(?:\s+(?:trabajar|work(?:ing)?|arbeiten|en|in))*\s+{_REMOTE_WORDS})"
    r"(?:-only)?(?![\w-])"
)
_REMOTE = re.compile(
    rf"(?<![\w-]){_REMOTE_WORDS}|(?<![\w-])(?:remotamente|a distancia|work(?:ing)? from home|wfh"
    r"|ortsunabhängig)(?![\w-])"
)
# Words before a title that is not in the vocabulary ("about the growth hacker role"), and words
# that make such a phrase something else than a title ("the last react campaign").
_TITLE_LEAD = {"the", "our", "a", "an", "this", "that", "my", "your", "der", "die", "das", "den",
               "dem", "unsere", "unserer", "unseren", "unser", "el", "la", "los", "las", "nuestro",
               "nuestra", "al", "del", "meine", "meinen", "meiner", "mein", "mis", "mi",
               "nuestros", "nuestras"}  # fmt: skip
_NOT_TITLE = {"last", "latest", "recent", "current", "first", "next", "previous", "big", "small",
              "same", "other", "whole", "letzte", "letzten", "aktuelle", "aktuellen", "neue",
              "neuen", "última", "ultima", "último", "ultimo", "nueva", "nuevo", "hiring",
              "recruiting", "outreach", "email", "e-mail", "mail", "candidate", "remote",
              "remoto", "usual"}  # fmt: skip
# Ordinary words one typo away from a skill or city: "settle" is not Seattle, "sparks" not Spark.
_KNOWN_WORDS = common_words() | {"settle", "sparks", "string", "strings", "genera"}
# Seniority words that are ordinary words too ("staff the team", "lead the call") count only
# when a person noun or title noun follows.
# ...or when people are counted or described by a skill: "cuántos lead con go", "leads with go".
_HOW_MANY = {"many", "viele", "cuántos", "cuantos", "cuántas", "cuantas", "any", "alle", "todos"}
# People described as experienced with no seniority word: "devs vue con experiencia".
_EXPERIENCED = re.compile(r"(?<![\w])con (?:mucha )?experiencia(?![\w])")
_NEEDS_NOUN = {"staff", "lead", "principal", "head", "líder", "lider", "leitender", "leitende"}


def _joins(gap: str) -> bool:
    """Whether the text between two skills lists them: "or", "und", "y", "/", a comma."""
    word = gap.strip(" ,")
    return word in _JOINERS or (word == "" and "," in gap)


def _listed(low: str, one: re.Match[str], other: re.Match[str]) -> bool:
    """Whether two skill names in `low` are listed together ("python or go")."""
    first, second = sorted((one, other), key=lambda m: m.start())
    return _joins(low[first.end() : second.start()])


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
        # Words that are spelt right already: never "corrected" into a skill or a city.
        known = (
            set(vocabulary.skills)
            | set(vocabulary.cities)
            | set(vocabulary.seniority)
            | vocabulary.title_nouns
            | vocabulary.role_markers
            | _TITLE_STOP
            | _KNOWN_WORDS
        )
        self._countries = _terms_pattern(set(vocabulary.countries))
        known |= set(vocabulary.countries)
        self._skill_typos = TypoIndex(vocabulary.skills, known)
        self._city_typos = TypoIndex(vocabulary.cities, known)
        self._country_typos = TypoIndex(vocabulary.countries, known)

    def extract(self, text: str) -> Slots:
        return self.read(text).slots

    def read(self, text: str, markers: frozenset[str] = frozenset()) -> Reading:
        """The slots `text` names; `markers` are more words that end a title the way "role"
        does (CAMPAIGN_MARKERS, for a question about a campaign)."""
        low = text.lower()
        title, low = self._job_title(text, low, self._markers | markers)
        follow_up_days, low = follow_up_request(low)
        years, low = self._years(low)
        limit, low = self._limit(low)
        too_large = None
        if years is not None and years > MAX_YEARS_EXPERIENCE:
            too_large, years = TooLarge("min_years_experience", years, MAX_YEARS_EXPERIENCE), None
        if limit is not None and limit > MAX_LIMIT:
            too_large, limit = TooLarge("limit", limit, MAX_LIMIT), None
        remote = self._remote(low)
        excluded, low = self._excluded(low)
        skills = [s for s in self._skill_list(text, low, markers) if s not in excluded]
        location = self._location(text, low, markers)
        slots = Slots(
            skills=skills,
            location=location,
            seniority=self._seniority_level(low),
            min_years_experience=years,
            job_title=title,
            limit=limit,
            country=None if location else self._country(low),
            remote=remote,
            exclude_skills=excluded,
            follow_up_days=follow_up_days,
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
            or w in self.vocabulary.titles
            or w.rstrip("s") in nouns
            or any(len(n) >= 5 and w.endswith(n) for n in nouns)
            for w in words
        )

    def _job_title(self, text: str, low: str, markers: set[str]) -> tuple[str | None, str]:
        tokens = [_Span(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(low)]
        # Where the lower-cased text lines up with the text (it nearly always does), a title
        # may also be told by its capitals: "the Staff Backend role", "the SRE position".
        written = text if len(text) == len(low) else None
        for i, token in enumerate(tokens):
            word = token.text.rstrip(".:,;")
            if word not in markers:
                continue
            # Title after the marker: "Stelle als X", "puesto de X", "role of X", also with an
            # article ("Kampagne für den Backend Engineer"), or straight after it in German
            # ("wegen der Stelle Backend Engineer").
            after = i + 1
            # "the campaign for the data platform lead": "for" only after a campaign word, as a
            # search for people ("search for python developers") names no job.
            joiners = _TITLE_JOINERS | ({"for", "para"} if word in CAMPAIGN_MARKERS else set())
            joined = after < len(tokens) and tokens[after].text in joiners
            # "role: X", "Stelle: X", "puesto: X" (unless a title comes before: "the Data Engineer
            # job: target SQL people"); "the role is X", "el puesto es X"
            colon = after < len(tokens) and ":" in low[token.end : tokens[after].start]
            if colon and tokens[after].text not in joiners:
                span = self._walk(tokens, i - 1, -1, markers, written, low=low)
                if span is not None:
                    return span.text, _blank(low, span.start, token.end)
                joined, after = True, after - 1
            elif after < len(tokens) and tokens[after].text in _TITLE_IS:
                joined = True
            if joined:
                after += 1
                if after < len(tokens) and tokens[after].text in _ARTICLES:
                    after += 1
            elif i > 0 and tokens[i - 1].text in _DIRECT_ARTICLES:
                pass
            elif i == 0 or any(c in ",;:" for c in low[tokens[i - 1].end : token.start]):
                # a marker that opens a part of the message: "..., vacante UI Engineer"
                span = self._walk(tokens, after, 1, markers, written, free=False, low=low)
                if span is not None and word not in _SEARCH_WORDS and not self._audience(span):
                    return span.text, _blank(low, token.start, span.end)
                after = -1
            else:
                after = -1
            if after > 0:
                span = self._walk(tokens, after, 1, markers, written, free=joined, low=low)
                if span is not None:
                    return span.text, _blank(low, token.start, span.end)
            # Title before the marker: "the Staff Backend Engineer role".
            span = self._walk(tokens, i - 1, -1, markers, written, low=low)
            if span is not None:
                return span.text, _blank(low, span.start, token.end)
        # No "role" word: a title the vocabulary knows after "por lo del", "thema", "betreff".
        for cue in _TITLE_CUE.finditer(low):
            after = next((k for k, t in enumerate(tokens) if t.start >= cue.end()), len(tokens))
            if after < len(tokens) and tokens[after].text in _ARTICLES:
                after += 1
            span = self._walk(tokens, after, 1, markers, written, free=False, low=low)
            if span is not None and not (_CAMPAIGN_CUE.match(cue.group()) and self._audience(span)):
                return span.text, _blank(low, cue.start(), span.end)
        for cue in _BARE_CUE.finditer(low):
            after = next((k for k, t in enumerate(tokens) if t.start >= cue.end()), len(tokens))
            span = self._walk(tokens, after, 1, markers, written, free=False, low=low)
            if span is None or self._plural_audience(span):
                continue
            if low[span.end :].strip()[:1] in {"", ",", ".", ";", "!", "?", "("}:
                return span.text, _blank(low, cue.start(), span.end)
        return None, low

    def _walk(
        self,
        tokens: list[_Span],
        index: int,
        step: int,
        markers: set[str],
        written: str | None,
        free: bool = True,
        low: str = "",
    ) -> _Span | None:
        """The title walking from `index` by `step`; a title the vocabulary does not know only
        where `free` (forward) or after "the"/"our"/"unsere"/"el" (backward)."""
        picked: list[_Span] = []
        while 0 <= index < len(tokens) and len(picked) < 6:
            word = tokens[index].text.rstrip(".:,;")
            before = tokens[index - 1].text if index > 0 else ""
            # the punctuation written right after this token: "platform engineer: go devs"
            following = tokens[index + 1].start if index + 1 < len(tokens) else len(low)
            mark = tokens[index].text[-1:] + low[tokens[index].end : following].strip()[:1]
            title_of = word == "of" and before in _OF_TITLES
            if (word in _TITLE_STOP and not title_of) or word[:1].isdigit() or word in markers:
                break
            # A title takes in no city, and walking back ends at a comma: "in köln, 2-4 jahre,
            # growth engineer stelle" names a "growth engineer".
            if word in self.vocabulary.cities or word in self.vocabulary.countries:
                break
            if _PARTICIPLE.match(word):  # "die Mails für den Product Owner geantwortet"
                break
            if step < 0 and any(c in ",;:" for c in mark):
                break
            picked.append(tokens[index])
            if step > 0 and any(c in ",.;:" for c in mark):
                break
            index += step
        if step < 0:
            picked.reverse()
        words = [t.text.rstrip(".:,;") for t in picked]
        if not picked:
            return None
        # Walking back, a free title needs "the"/"our"/"unsere"/"el" before it: "about the
        # growth hacker role"; walking forward, it follows "als"/"de"/"of" or an article.
        led = free if step > 0 else 0 <= index < len(tokens) and tokens[index].text in _TITLE_LEAD
        if (
            not self._is_title(words)
            and not self._capitalised_title(picked, words, written)
            and not (led and self._free_title(words))
        ):
            return None
        return _Span(picked[0].start, picked[-1].end, " ".join(words))

    def _audience(self, span: _Span) -> bool:
        """Whether words after "a campaign for" name the people to write to, not a job: a skill
        or a level ("senior Java developers") or people in the plural ("python engineers")."""
        words = span.text.split()
        vocabulary = self.vocabulary
        last = words[-1]
        plural = _is_person(last) and last not in vocabulary.title_nouns
        return plural or any(w in vocabulary.skills or w in vocabulary.seniority for w in words)

    def _plural_audience(self, span: _Span) -> bool:
        """Whether words after a bare "wegen"/"por" name people in the plural ("für data
        engineers", "für senior java entwickler"), not a job ("wegen iOS Developer")."""
        words = span.text.split()
        vocabulary = self.vocabulary
        last = words[-1]
        if _is_person(last) and last not in vocabulary.title_nouns:
            return True
        # German "Entwickler" is singular and plural: with a skill or a level, people
        return last in _SAME_PLURAL and any(
            w in vocabulary.skills or w in vocabulary.seniority for w in words
        )

    def _free_title(self, words: list[str]) -> bool:
        """Two or more words that name a job the vocabulary does not know ("growth hacker",
        "customer success"): not a city, not only skills or levels, not an audience ("python
        devs") and not a word like "last" ("the last react campaign")."""
        vocabulary = self.vocabulary
        plain = set(vocabulary.skills) | set(vocabulary.seniority) | _KNOWN_WORDS
        return (
            len(words) >= 2
            and all(w.replace("-", "").isalpha() for w in words)
            and not any(w in _NOT_TITLE or _is_person(w) for w in words)
            and not any(w in vocabulary.cities or w in vocabulary.countries for w in words)
            and not all(w in plain for w in words)
        )

    def _capitalised_title(
        self, picked: list[_Span], words: list[str], written: str | None
    ) -> bool:
        """Two or more words written with a capital, or an acronym, that are not a city and not
        only skills: "Staff Backend", "SRE" (not "the Backend role", "the Berlin campaign" or
        "the React campaign")."""
        if written is None:
            return False
        spelt = [written[t.start : t.end] for t in picked]
        acronym = len(spelt) == 1 and len(spelt[0]) >= 2 and spelt[0].isupper()
        capitalised = acronym or (len(spelt) >= 2 and all(w[:1].isupper() for w in spelt))
        cities = self.vocabulary.cities
        skills = self.vocabulary.skills
        names_a_city = any(w in cities for w in words) or " ".join(words) in cities
        only_skills = all(w in skills for w in words)
        return capitalised and not names_a_city and not only_skills

    # -- numbers -----------------------------------------------------------------------------

    @staticmethod
    def _first(patterns: list[re.Pattern[str]], low: str) -> tuple[int | None, str]:
        for pattern in patterns:
            match = pattern.search(low)
            if match:  # blank the number only: "6 years of Django experience" keeps Django
                return int(match.group(1)), _blank(low, match.start(1), match.end(1))
        return None, low

    def _years(self, low: str) -> tuple[int | None, str]:
        match = _YEAR_RANGE.search(low)
        if match and int(match.group(1)) <= int(match.group(2)):
            # Both numbers go, so the upper bound is not read as a number of candidates.
            return int(match.group(1)), _blank(low, match.start(1), match.end(2))
        return self._first(_YEAR_PATTERNS, low)

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

    def _names_skill(self, low: str, start: int, end: int, nouns: frozenset[str]) -> bool:
        """Whether an ambiguous skill word written in lower case is meant as the skill: a person
        noun (or one of `nouns`) follows it ("go developers", "the go campaign") or comes before
        it ("desarrolladores react", "devs de angular"), or a word like "with" does ("with
        flutter", "who know spark")."""
        following = self._next_words(low, end, 2)
        if any(_is_person(w) or w in nouns for w in following):
            return True
        # a criterion of its own in a list of them: "frontend people in madrid, react, no jquery"
        left = max(low.rfind(c, 0, start) for c in ",;:") + 1
        rights = [i for i in (low.find(c, end) for c in ",;:") if i >= 0]
        right = min(rights, default=len(low))
        if (left > 0 or right < len(low)) and low[left:right].strip(" .!?") == low[start:end]:
            return True
        if following and following[0] in _SKILL_AFTER_CUES:
            return True
        before = _TOKEN.findall(low[max(0, start - 60) : start])[-3:]
        if before and before[-1] in _SKILL_CUES:
            return True
        # "perfiles junior de angular": over "de" and a seniority word to the noun; "alguien de
        # swift" too, but not "alguien swift"
        over_de = False
        while before and (before[-1] in {"de", "del"} or before[-1] in self.vocabulary.seniority):
            over_de = over_de or before[-1] in {"de", "del"}
            before = before[:-1]
        return bool(before) and (
            _is_person(before[-1]) or before[-1] in nouns or (over_de and before[-1] in _SOMEONE)
        )

    def _skill_list(self, text: str, low: str, nouns: frozenset[str] = frozenset()) -> list[str]:
        found: list[str] = []
        matches = list(self._skills.finditer(low))
        taken = [match.span() for match in matches]
        named: list[bool | None] = []
        for match in matches:
            alias = match.group()
            written = text[match.start() : match.end()]
            sure = (
                alias not in self.vocabulary.ambiguous_skills
                or written != alias
                or self._names_skill(low, *match.span(), nouns)
            )
            named.append(True if sure else None)  # None: "let's go", unless listed with a skill
        changed = True
        while changed:  # "python or go", "react o vue": a word listed with a skill is one too
            changed = False
            for i, match in enumerate(matches):
                if named[i] is None and any(
                    0 <= j < len(matches) and named[j] and _listed(low, match, matches[j])
                    for j in (i - 1, i + 1)
                ):
                    named[i] = changed = True
        for match, listed in zip(matches, named, strict=True):
            canonical = self.vocabulary.skills[match.group()]
            if listed and canonical not in found:
                found.append(canonical)
        for match in _WORD.finditer(low):  # "pyhton", "kuberntes": after the exact names
            if any(start <= match.start() < end for start, end in taken):
                continue
            word = match.group()
            typo = None if _is_person(word) else self._skill_typos.find(word)
            ambiguous = typo is None or typo[0] in self.vocabulary.ambiguous_skills
            if typo is not None and not ambiguous and typo[1] not in found:
                found.append(typo[1])
        return found

    def _location(self, text: str, low: str, nouns: frozenset[str] = frozenset()) -> str | None:
        fallback: str | None = None
        for match in self._cities.finditer(low):
            if self._previous_word(low, match.start()) in _LOCATIVE:
                return match.group()
            if nouns and any(w in nouns for w in self._next_words(low, match.end(), 2)):
                return match.group()  # "the berlin campaign", "the amsterdam go campaign"
            written = text[match.start() : match.end()]
            if fallback is None and written[:1].isupper():
                fallback = match.group()
        if fallback is None:  # a German city adjective: "die Kölner Kampagne", "Münchner Devs"
            for match in _WORD.finditer(low):
                word = match.group()
                if len(word) > 5 and word.endswith("er"):
                    for stem in (word[:-2], word[:-3] + "en"):  # kölner, münchner, dresdner
                        if stem in self.vocabulary.cities:
                            return stem
        if fallback is None:  # "in barcelna", "Berln": a misspelt city after "in" or capitalised
            for match in _WORD.finditer(low):
                written = text[match.start() : match.end()] if len(text) == len(low) else ""
                if (
                    self._previous_word(low, match.start()) in _LOCATIVE
                    or written[:1].isupper()
                    or (nouns and any(w in nouns for w in self._next_words(low, match.end(), 2)))
                ):
                    typo = self._city_typos.find(match.group())
                    if typo is not None:
                        return typo[1]  # the city's canonical name, not the alias it is near
        return fallback

    # -- country, remote, ruled-out skills ---------------------------------------------------

    def _country(self, low: str) -> str | None:
        """The ISO code of the country the message names ("in Spain", "anywhere in Germany",
        "en España", "deutschlandweit"), also misspelt right after "in" ("in germnay")."""
        match = self._countries.search(low)
        if match:
            return self.vocabulary.countries[match.group()]
        for word in _WORD.finditer(low):
            if self._previous_word(low, word.start()) in _LOCATIVE:
                typo = self._country_typos.find(word.group())
                if typo is not None:
                    return typo[1]
        return None

    @staticmethod
    def _remote(low: str) -> bool | None:
        """True for remote people ("fully remote", "remoto", "Home-Office"), False for on-site
        ones ("onsite", "vor Ort", "presencial", "no remote"), None when both or neither."""
        onsite = [m.span() for m in _ONSITE.finditer(low)]
        remote = [
            m for m in _REMOTE.finditer(low) if not any(a <= m.start() < b for a, b in onsite)
        ]
        if remote and not onsite:
            return True
        if onsite and not remote:
            return False
        return None

    def _skill_at(self, low: str, pos: int) -> tuple[str, int] | None:
        """(canonical skill, end) of a skill, maybe misspelt, that starts at `pos`."""
        match = self._skills.match(low, pos)
        if match:
            return self.vocabulary.skills[match.group()], match.end()
        word = _WORD.match(low, pos)
        typo = self._skill_typos.find(word.group()) if word else None
        if word and typo is not None:
            return typo[1], word.end()
        return None

    def _excluded(self, low: str) -> tuple[list[str], str]:
        """Skills the message rules out ("not Java", "no PHP or Perl", "ohne Java", "kein PHP",
        "sin Java ni PHP", "except those with azure"), and `low` with them blanked, so they are
        not read as wanted skills."""
        excluded: list[str] = []
        for cue in _NEGATION.finditer(low):
            pos, end, fillers, tail = cue.end(), 0, 0, 0
            found: list[str] = []
            while True:
                while pos < len(low) and low[pos] in " -":
                    pos += 1
                skill = self._skill_at(low, pos)
                if skill is not None and (not found or tail == -1):
                    found.append(skill[0])
                    pos = end = skill[1]
                    tail = 0
                    continue
                word = _TOKEN.match(low, pos)
                if word is None:
                    break
                text = word.group().strip("-").rstrip(".;:!?")
                if found and text in _JOINERS:
                    tail = -1  # another skill may follow
                elif found and tail >= 0 and tail < 2 and (text in _SKILL_TAIL or _is_person(text)):
                    tail += 1
                elif not found and fillers < 3 and text in _NEGATION_FILLER:
                    fillers += 1
                else:
                    break
                if word.group()[-1:] in ".;:!?":
                    break  # punctuation ends what the negation covers
                pos = word.end()
            if found:
                excluded += [s for s in found if s not in excluded]
                low = _blank(low, cue.start(), end)
        return excluded, low

    def _seniority_level(self, low: str) -> str | None:
        for match in self._seniority.finditer(low):
            word = match.group()
            if word in _NEEDS_NOUN:
                nearby = self._next_words(low, match.end(), 3)
                previous = self._previous_word(low, match.start())
                nearby.append(previous)  # "ingenieros staff"
                nouns = self.vocabulary.title_nouns
                counted = previous in _HOW_MANY or nearby[:1] in (["with"], ["mit"], ["con"])
                if not counted and not any(_is_person(w) or w in nouns for w in nearby):
                    continue
            return self.vocabulary.seniority[word]
        for match in _EXPERIENCED.finditer(low):
            # "devs con experiencia" are senior; "con experiencia en python" names a skill
            following = self._next_words(low, match.end(), 2)
            if (
                following[:1] in (["en"], ["con"], ["de"])
                and len(following) > 1
                and self._skill_at(low, low.find(following[1], match.end())) is not None
            ):
                continue
            return "senior"
        return None
