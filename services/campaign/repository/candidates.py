"""The talent pool and the open jobs: which candidates fit a campaign's slots (one query, built
from the rules of `domain.extraction`), which open job a title names, and the profiles drafting
needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.campaign.domain.extraction import (
    CandidateMatch,
    JobClarification,
    JobMatch,
    JobOption,
    canonical_skills,
    city_spellings,
    match_job_title,
)
from services.campaign.domain.status import CONTACTED_STATUSES
from shared.contracts.intent import Slots
from shared.db import Connection, Database


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


async def resolve_job(conn: Connection, job_title: str | None) -> JobMatch | JobClarification:
    """The open job a recruiter's title names (see `match_job_title`)."""
    rows = await conn.fetch(
        "SELECT job_id, title, city FROM campaign.jobs WHERE status = 'open'"
        " ORDER BY created_at DESC, job_id"
    )
    jobs = [JobOption.model_validate(dict(row)) for row in rows]
    return match_job_title(job_title or "", jobs)


@dataclass(frozen=True)
class Query:
    """SQL with `$n` placeholders and the arguments that fill them, in order."""

    sql: str
    args: tuple[object, ...]


async def job_of_campaign(db: Database, campaign_id: uuid.UUID) -> asyncpg.Record | None:
    """The job the campaign is for (every column), or None if there is no such campaign."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT j.* FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
        " WHERE c.campaign_id = $1",
        campaign_id,
    )
    return row


async def undrafted_recipients(db: Database, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    """The profiles of the campaign's recipients who have no email yet, best-ranked first."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT c.* FROM campaign.recipients r JOIN campaign.candidates c USING (candidate_id)"
        " WHERE r.campaign_id = $1 AND NOT EXISTS (SELECT 1 FROM campaign.emails e"
        "  WHERE e.campaign_id = r.campaign_id AND e.candidate_id = r.candidate_id)"
        " ORDER BY r.rank",
        campaign_id,
    )
    return rows
