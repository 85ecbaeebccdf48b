"""Who a campaign writes to: the job it is for (resolved from a title, never guessed) and the
ranked candidates that fit its slots, minus suppressed addresses and recent contacts.

The query building and title matching are pure functions; `resolve_job` and `extract_candidates`
are the thin asyncpg calls around them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.db import Connection
from shared.events import Slots

# An email in one of these states means the candidate heard (or is about to hear) about the job.
# 'rejected', 'expired' and 'failed' drafts never reached them, so they do not count.
CONTACTED_STATUSES = ("drafted", "approved", "sending", "sent", "bounced")
MAX_CLARIFICATION_OPTIONS = 5

# The product's city vocabulary (English and local spellings) lives with the intent service, which
# puts whatever spelling the recruiter wrote into `Slots.location`; reading the same file keeps
# "München" and "Munich" the same city here without a second list to maintain.
_CITIES_FILE = (
    Path(__file__).resolve().parent.parent / "intent" / "data" / "vocabulary" / "cities.json"
)
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
    matched_by: Literal["title", "words"]


class JobClarification(Result):
    """No single open job fits the title: ask, offering the closest titles, rather than guess."""

    kind: Literal["needs_clarification"] = "needs_clarification"
    requested: str
    question: str
    options: list[JobOption]


@dataclass(frozen=True)
class Query:
    """SQL with `$n` placeholders and the arguments that fill them, in order."""

    sql: str
    args: tuple[object, ...]


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


class _Params:
    """Numbers the placeholders as arguments are added, so clauses can be optional."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def build_extraction_query(
    slots: Slots,
    job_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    window_days: int,
    limit: int,
) -> Query:
    """One query for the campaign's candidates, best first.

    Requested skills are alternatives: a candidate needs one of them, and ranks by how many they
    have, then by experience. The current campaign's own emails do not count as earlier contact,
    so extracting again for the same campaign returns the same people.
    """
    if limit < 1 or window_days < 0:
        raise ValueError("limit must be at least 1 and window_days zero or more")
    # Only `$n` placeholders and this module's constants are spliced into the SQL (hence S608).
    p = _Params()
    where: list[str] = []
    skills = canonical_skills(slots.skills)
    if skills:
        wanted = p(skills)
        where.append(f"c.skills && {wanted}::text[]")
        matched = (
            f"ARRAY(SELECT s FROM unnest(c.skills) WITH ORDINALITY AS u(s, i)"  # noqa: S608
            f" WHERE s = ANY({wanted}::text[]) ORDER BY i)"
        )
    else:
        matched = "'{}'::text[]"
    if slots.location and slots.location.strip():
        where.append(f"lower(c.city) = ANY({p(city_spellings(slots.location))}::text[])")
    if slots.seniority is not None:
        where.append(f"c.seniority = {p(slots.seniority)}")
    if slots.min_years_experience is not None:
        where.append(f"c.years_experience >= {p(slots.min_years_experience)}")
    where.append(
        "NOT EXISTS (SELECT 1 FROM campaign.suppressions sup WHERE sup.email = lower(c.email))"
    )
    statuses = ", ".join(f"'{s}'" for s in CONTACTED_STATUSES)
    where.append(
        "NOT EXISTS (SELECT 1 FROM campaign.emails e"  # noqa: S608
        f" WHERE e.job_id = {p(job_id)} AND e.candidate_id = c.candidate_id"
        f" AND e.campaign_id <> {p(campaign_id)} AND e.status IN ({statuses})"
        f" AND coalesce(e.sent_at, e.created_at) > now() - make_interval(days => {p(window_days)}))"
    )
    sql = (
        "SELECT c.candidate_id, c.full_name, c.first_name, c.email, c.city, c.seniority,"  # noqa: S608
        " c.years_experience, c.skills, m.matched_skills, c.headline, c.summary, c.found_via"
        f" FROM campaign.candidates c CROSS JOIN LATERAL (SELECT {matched} AS matched_skills) m"
        f" WHERE {' AND '.join(where)}"
        " ORDER BY cardinality(m.matched_skills) DESC, c.years_experience DESC NULLS LAST,"
        f" c.candidate_id LIMIT {p(limit)}"
    )
    return Query(sql, tuple(p.values))


async def extract_candidates(
    conn: Connection,
    slots: Slots,
    job_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    window_days: int,
    limit: int,
) -> list[CandidateMatch]:
    """The campaign's candidates, best first (see `build_extraction_query`)."""
    query = build_extraction_query(slots, job_id, campaign_id, window_days=window_days, limit=limit)
    rows = await conn.fetch(query.sql, *query.args)
    return [CandidateMatch.model_validate(dict(row)) for row in rows]


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


async def resolve_job(conn: Connection, job_title: str | None) -> JobMatch | JobClarification:
    """The open job a recruiter's title names (see `match_job_title`)."""
    rows = await conn.fetch(
        "SELECT job_id, title, city FROM campaign.jobs WHERE status = 'open'"
        " ORDER BY created_at DESC, job_id"
    )
    jobs = [JobOption.model_validate(dict(row)) for row in rows]
    return match_job_title(job_title or "", jobs)
