"""A search of the talent pool, in words: how many of the best matches to show, why each matches
("has 2 of 2 skills asked for (python, django); 9 years of experience"), and the answer in one
line for a chat. The candidates themselves are found by the campaign's extraction rules
(`domain.extraction`, `repository/candidates.py`), so a search and a campaign agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.campaign.domain.extraction import CandidateMatch, canonical_skills, country_name
from shared.contracts.campaign import (
    MAX_SEARCH_SHOWN,
    CampaignJob,
    CandidateHit,
    CandidateSearchAnswer,
)
from shared.contracts.intent import Slots

SUMMARY_NAMES = 5  # names the summary line lists; the rest are in `matches`


@dataclass(frozen=True)
class Reach:
    """Whether a candidate can be written to now: the suppression's reason, and the latest email
    to them within the contact window (when, and about which job)."""

    suppressed: str | None = None
    contacted_at: datetime | None = None
    contacted_about: str | None = None

    @property
    def reachable(self) -> bool:
        return self.suppressed is None and self.contacted_at is None


@dataclass(frozen=True)
class Counted:
    """How many candidates match (at most `cap` counted) and how many of those are reachable."""

    matched: int
    reachable: int
    cap: int

    @property
    def total(self) -> int:
        return min(self.matched, self.cap)

    @property
    def is_lower_bound(self) -> bool:
        return self.matched > self.cap

    @property
    def available(self) -> int:
        return min(self.reachable, self.total)


def shown_limit(requested: int, slots_limit: int | None) -> int:
    """How many matches to show: the slots' number ("the five best") over the command's, capped."""
    wanted = slots_limit if slots_limit is not None else requested
    return max(1, min(wanted, MAX_SEARCH_SHOWN))


def why(match: CandidateMatch, slots: Slots) -> str:
    """Why the candidate matches, in a short sentence."""
    parts = []
    asked = canonical_skills(slots.skills)
    if asked:
        has = canonical_skills(match.matched_skills)
        listed = f" ({', '.join(has)})" if has else ""
        parts.append(f"has {len(has)} of {len(asked)} skills asked for{listed}")
    if match.years_experience is not None:
        unit = "year" if match.years_experience == 1 else "years"
        parts.append(f"{match.years_experience} {unit} of experience")
    else:
        parts.append("years of experience unknown")
    if slots.seniority and match.seniority:
        parts.append(match.seniority)
    if (slots.location or slots.country) and match.city:
        parts.append(f"in {match.city}")
    unwanted = canonical_skills(slots.exclude_skills)
    if unwanted:
        parts.append(f"no {' or '.join(unwanted)}")
    return "; ".join(parts)


def hit(match: CandidateMatch, slots: Slots, reach: Reach) -> CandidateHit:
    return CandidateHit(
        candidate_id=match.candidate_id,
        full_name=match.full_name,
        city=match.city,
        seniority=match.seniority,
        years_experience=match.years_experience,
        skills=match.skills,
        matched_skills=match.matched_skills,
        why=why(match, slots),
        suppressed=reach.suppressed,
        contacted_at=reach.contacted_at,
        contacted_about=reach.contacted_about,
    )


def criteria(slots: Slots) -> str:
    """What was searched for, as in "python or django in Berlin, Germany (senior, 5+ years,
    remote), not java". Remote is said as asked, though the pool does not record it (the search
    does not narrow by it)."""
    skills = canonical_skills(slots.skills)
    text = " or ".join(skills) if skills else ""
    places = []
    if slots.location and slots.location.strip():
        city = " ".join(slots.location.split())
        places.append(city.title() if city.islower() else city)  # the intent's "berlin"
    if slots.country and slots.country.strip():
        places.append(country_name(slots.country))
    if places:
        text += f" in {', '.join(places)}"
    profile: list[str] = []
    if slots.seniority:
        profile.append(slots.seniority)
    if slots.min_years_experience is not None:
        profile.append(f"{slots.min_years_experience}+ years")
    if slots.remote is not None:
        profile.append("remote" if slots.remote else "on-site")
    if profile:
        text += f" ({', '.join(profile)})"
    unwanted = canonical_skills(slots.exclude_skills)
    if unwanted:
        text = ", ".join(filter(None, (text.strip(), f"not {' or '.join(unwanted)}")))
    return text.strip()


def summary(slots: Slots, counted: Counted, hits: Sequence[CandidateHit]) -> str:
    """The answer in one line: how many match, how many can be contacted, and the top names."""
    about = criteria(slots)
    if counted.total == 0:
        return f"No candidate matches {about}." if about else "The talent pool is empty."
    many = f"More than {counted.total:,}" if counted.is_lower_bound else f"{counted.total:,}"
    one = counted.total == 1 and not counted.is_lower_bound
    noun = "candidate matches" if one else "candidates match"
    line = f"{many} {noun} {about}" if about else f"{many} {noun}"
    if counted.available < counted.total:
        least = "at least " if counted.is_lower_bound else ""
        line += f", {least}{counted.available:,} of them free to contact"
    if not hits:
        return line + "."
    names = ", ".join(_label(h) for h in hits[:SUMMARY_NAMES])
    more = "" if len(hits) <= SUMMARY_NAMES else f" and {len(hits) - SUMMARY_NAMES} more"
    top = "the best" if len(hits) == 1 else f"the top {len(hits)}"
    return f"{line}; {top}: {names}{more}."


def _label(hit: CandidateHit) -> str:
    if hit.suppressed:
        return f"{hit.full_name} (suppressed)"
    if hit.contacted_at is not None:
        return f"{hit.full_name} (contacted recently)"
    return hit.full_name


def answer(
    slots: Slots,
    job: CampaignJob | None,
    counted: Counted,
    matches: Sequence[tuple[CandidateMatch, Reach]],
) -> CandidateSearchAnswer:
    hits = [hit(match, slots, reach) for match, reach in matches]
    return CandidateSearchAnswer(
        total=counted.total,
        total_is_lower_bound=counted.is_lower_bound,
        available=counted.available,
        job=job,
        matches=hits,
        summary=summary(slots, counted, hits),
    )
