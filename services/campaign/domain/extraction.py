"""Who a campaign writes to: the job it is for (resolved from a title, never guessed) and the
ranked candidates that fit its slots, minus suppressed addresses and recent contacts.

The rules (title matching, canonical skills, city spellings, the limit) are here;
`repository/candidates.py` builds and runs the query and reads the open jobs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.intent import Slots
from shared.contracts.workflow import Choice, Question

MAX_CLARIFICATION_OPTIONS = 5

# The product's city vocabulary (English and local spellings) lives with the intent service, which
# puts whatever spelling the recruiter wrote into `Slots.location`; reading the same file keeps
# "München" and "Munich" the same city here without a second list to maintain.
_CITIES_FILE = (
    Path(__file__).resolve().parents[2] / "intent" / "data" / "vocabulary" / "cities.json"
)
# Its country names ("ES": "spain", "españa", ...), English first, for the search's answer.
_COUNTRIES_FILE = _CITIES_FILE.with_name("countries.json")
# Words that say "a job" without saying which one.
_TITLE_FILLER = frozenset({
    "a", "an", "the", "for", "of", "our", "this", "that", "to", "in", "at", "on", "and", "or",
    "with", "role", "job", "position", "opening", "vacancy", "vacancies", "opportunity", "req",
    "requisition", "new", "open",
})  # fmt: skip
# Letters and digits of any script, plus what makes "c++", "c#", "node.js" and ".net" words.
_WORD = re.compile(r"(?:[^\W_]|[+#])+(?:\.(?:[^\W_]|[+#])+)*|\.[^\W_]+")


class Result(BaseModel):
    """Frozen: a result is a value, passed on to the workflow as it is."""

    model_config = ConfigDict(frozen=True)


class CandidateMatch(Result):
    """One candidate to write to, with what made them match (for the email and the reviewer)."""

    candidate_id: uuid.UUID
    full_name: str
    first_name: str | None
    email: str
    city: str | None
    seniority: str | None
    years_experience: int | None
    skills: list[str]
    matched_skills: list[str]
    headline: str | None
    summary: str | None
    found_via: str | None


class JobOption(Result):
    """An open job offered to the recruiter when their title was not precise enough."""

    job_id: uuid.UUID
    title: str
    city: str | None = None

    @property
    def label(self) -> str:
        return f"{self.title} ({self.city})" if self.city else self.title


class JobMatch(Result):
    """The one open job the title names."""

    kind: Literal["match"] = "match"
    job_id: uuid.UUID
    title: str
    matched_by: Literal["id", "title", "words"]


class JobClarification(Result):
    """No single open job fits the title: ask, offering the closest titles, rather than guess."""

    kind: Literal["needs_clarification"] = "needs_clarification"
    requested: str
    question: str
    options: list[JobOption]


def extraction_limit(requested: int | None, *, default: int, maximum: int) -> int:
    """How many candidates to extract: the slot's limit if given, else the default, capped so a
    typo ("10000") cannot queue a mass mailing for review."""
    return max(1, min(requested if requested is not None else default, maximum))


def canonical_skills(skills: Iterable[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated skill names in their first-seen order."""
    seen: dict[str, None] = {}
    for skill in skills:
        name = " ".join(skill.split()).lower()
        if name:
            seen.setdefault(name, None)
    return list(seen)


@cache
def _country_names() -> dict[str, str]:
    try:
        raw = json.loads(_COUNTRIES_FILE.read_text(encoding="utf-8"))
        return {code.upper(): info["names"][0] for code, info in raw.items() if info.get("names")}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return {}  # the vocabulary is the intent service's: without it, the code will do


def country_name(code: str) -> str:
    """The country's English name ("ES" -> "Spain"), or its code when the vocabulary lacks it."""
    code = code.strip().upper()
    name = _country_names().get(code)
    if not name:
        return code
    return code if len(name) <= 3 else " ".join(w.capitalize() for w in name.split())


@cache
def _city_groups() -> dict[str, frozenset[str]]:
    raw = json.loads(_CITIES_FILE.read_text(encoding="utf-8"))
    groups: dict[str, frozenset[str]] = {}
    for canonical, info in raw.items():
        spellings = frozenset(s.lower() for s in {canonical, *info.get("aliases", [])})
        for spelling in spellings:
            groups[spelling] = spellings
    return groups


def city_spellings(location: str) -> list[str]:
    """Every lower-case spelling of the city: "münchen" -> munich, münchen, muenchen, ...;
    a city the vocabulary does not know matches only as written."""
    name = " ".join(location.split()).lower()
    return sorted(_city_groups().get(name, frozenset()) | {name})


# --- Which job ------------------------------------------------------------------------------


def title_words(title: str) -> frozenset[str]:
    """The words of a title that say which job it is: lower-case, without filler ("role") or
    a plural 's', so "Staff Backend roles" and "staff backend" have the same words."""
    words: set[str] = set()
    for word in _WORD.findall(title.lower()):
        plural = len(word) > 3 and word.isalpha() and word[-1] == "s" and word[-2] != "s"
        singular = word[:-1] if plural else word
        if word not in _TITLE_FILLER and singular not in _TITLE_FILLER:
            words.add(singular)
    return frozenset(words)


def match_job_title(requested: str, open_jobs: Sequence[JobOption]) -> JobMatch | JobClarification:
    """The one open job `requested` names, or a question. Tiers, most precise first: the same
    title ignoring case and spacing; the same significant words; a title containing all of
    them. Several jobs in the first tier that has any is a question, never a pick.
    `open_jobs` come most recent first, which orders the options offered."""
    by_id = _job_by_id(requested, open_jobs)
    if by_id is not None:  # an answer to the question below picks a job by its id
        return JobMatch(job_id=by_id.job_id, title=by_id.title, matched_by="id")
    text = " ".join(requested.split()).lower()
    wanted = title_words(requested)
    tiers: list[tuple[Literal["title", "words"], list[JobOption]]] = [
        ("title", [j for j in open_jobs if " ".join(j.title.split()).lower() == text]),
        ("words", [j for j in open_jobs if wanted and title_words(j.title) == wanted]),
        ("words", [j for j in open_jobs if wanted and wanted <= title_words(j.title)]),
    ]
    for matched_by, matches in tiers:
        if len(matches) == 1:
            return JobMatch(job_id=matches[0].job_id, title=matches[0].title, matched_by=matched_by)
        if matches:
            return _clarify(requested, matches, several=True)
    return _clarify(requested, _closest(wanted, open_jobs), several=False)


def _job_by_id(requested: str, open_jobs: Sequence[JobOption]) -> JobOption | None:
    try:
        job_id = uuid.UUID(requested.strip())
    except ValueError:
        return None
    return next((job for job in open_jobs if job.job_id == job_id), None)


def job_question(clarification: JobClarification) -> Question:
    """The question a campaign's run waits on when its title names no single open job: the
    answer is one of the options (by number, label or id) or another title."""
    return Question(
        text=clarification.question,
        field="slots.job_title",
        choices=[Choice(label=o.label, value=str(o.job_id)) for o in clarification.options],
    )


def audience_question(
    slots: Slots, job_title: str, places: Sequence[tuple[str, int]]
) -> Question | None:
    """The question a campaign's run waits on when nobody it could write to matches the slots
    in the place they name, but some would elsewhere: which city instead (`places`: cities and
    how many such candidates each has, most first). None when there is nowhere else to offer."""
    here = (slots.location or "").strip().casefold()
    others = [(city, n) for city, n in places if city.strip().casefold() != here]
    if not others:
        return None
    shown = others[:MAX_CLARIFICATION_OPTIONS]
    listed = "; ".join(f"{city} ({n})" for city, n in shown)
    return Question(
        text=f"Nobody matching {describe_slots(slots)} can be written to about {job_title}. "
        f"Candidates who would match live in other cities: {listed}. Which city should the "
        "campaign write to?",
        field="slots.location",
        choices=[Choice(label=f"{city} ({n})", value=city) for city, n in shown],
    )


def _closest(wanted: frozenset[str], open_jobs: Sequence[JobOption]) -> list[JobOption]:
    """Open jobs sharing the most words with the request; the most recent ones if none do."""
    scored = [(len(wanted & title_words(j.title)), n, j) for n, j in enumerate(open_jobs)]
    sharing = [(score, n, j) for score, n, j in scored if score > 0]
    if not sharing:
        return list(open_jobs[:MAX_CLARIFICATION_OPTIONS])
    sharing.sort(key=lambda item: (-item[0], item[1]))
    return [j for _, _, j in sharing[:MAX_CLARIFICATION_OPTIONS]]


def _clarify(requested: str, options: list[JobOption], *, several: bool) -> JobClarification:
    shown = options[:MAX_CLARIFICATION_OPTIONS]
    listed = "; ".join(o.label for o in shown)
    more = len(options) - len(shown)
    if more > 0:
        listed += f"; and {more} more"
    name = " ".join(requested.split())
    if not name:
        question = "Which open job is this campaign for?"
    elif several:
        question = f'"{name}" matches {len(options)} open jobs. Which one is it?'
    else:
        question = f'I found no open job matching "{name}". Which open job is this campaign for?'
    if shown:
        question += f" {'Options' if several else 'Open jobs include'}: {listed}."
    return JobClarification(requested=requested, question=question, options=shown)


def describe_slots(slots: Slots) -> str:
    """The audience criteria in words, for a failure a recruiter reads."""
    parts = []
    if slots.skills:
        parts.append(f"skills {' or '.join(slots.skills)}")
    if slots.location:
        parts.append(f"location {slots.location}")
    if slots.seniority:
        parts.append(f"seniority {slots.seniority}")
    if slots.min_years_experience is not None:
        parts.append(f"{slots.min_years_experience}+ years of experience")
    return ", ".join(parts) or "the request"
