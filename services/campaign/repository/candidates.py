"""The talent pool and the open jobs: which candidates fit a campaign's slots (one query, built
from the rules of `domain.extraction`), the same ranking for a search (with suppressed and
contacted candidates kept, and flagged), which open job a title names, and the profiles drafting
needs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

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
from services.campaign.domain.privacy import ERASED_DOMAIN
from services.campaign.domain.searching import Counted, Reach
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


# Above this many requested skills the ranked strata (one per "at least j of them", built from
# the combinations of j skills) grow too many, and the plain query is used instead.
MAX_STRATIFIED_SKILLS = 4
# How far a stratum walks the rank order (this many index entries per candidate asked for)
# before it fetches all its matches instead: walking on costs more once matches are rarer than
# one in WALK_PER_RESULT, and fetching them costs about their number.
WALK_PER_RESULT = 100
# The columns a walk reads: those of `candidates_rank` (0007, with the country since 0008), for an
# index-only scan.
_WALKED = "c.candidate_id, c.years_experience, c.skills, c.city, c.seniority, c.email, c.country"
_RANK = "c.years_experience DESC NULLS LAST, c.candidate_id"
_COLUMNS = (
    "c.candidate_id, c.full_name, c.first_name, c.email, c.city, c.seniority,"
    " c.years_experience, c.skills, m.matched_skills, c.headline, c.summary, c.found_via"
)


@dataclass(frozen=True)
class Contact:
    """Earlier contact: an email to the candidate in one of the `CONTACTED_STATUSES` within
    `window_days`, about `job_id` (None: about any job), other than `campaign_id`'s own; and,
    with `outreach_days`, another campaign's first email (step 0, any job) within that many days
    (the contact-frequency cap, SEND_CONTACT_FREQUENCY_DAYS; follow-ups do not count)."""

    job_id: uuid.UUID | None
    window_days: int
    campaign_id: uuid.UUID | None = None
    outreach_days: int = 0


def build_extraction_query(
    slots: Slots,
    job_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    window_days: int,
    limit: int,
    frequency_days: int = 0,
) -> Query:
    """The campaign's candidates: those `build_search_query` finds, minus suppressed addresses,
    candidates contacted about the job within `window_days` by another campaign, and those
    another campaign wrote a first email to within `frequency_days` (0: no such check)."""
    contact = Contact(job_id, window_days, campaign_id, frequency_days)
    return _ranked_query(slots, limit, exclude=contact)


def build_search_query(slots: Slots, *, limit: int) -> Query:
    """The best `limit` candidates who match the slots, ranked as a campaign ranks them, with
    suppressed and recently contacted ones kept (a search shows them, flagged)."""
    return _ranked_query(slots, limit, exclude=None)


def _ranked_query(slots: Slots, limit: int, *, exclude: Contact | None) -> Query:
    """One query for the best `limit` matches (without those `exclude` names), best first: the
    same rows, in the same order, as `_plain_query`, but its cost grows with the answer, not with
    the pool (docs/campaign.md, "Staying fast as the pool grows").

    The rank is (matched skills, years of experience, candidate id). Let d be how many of the k
    requested skills a candidate has. For each j in 1..k, a stratum takes the `limit` best by
    (years, id) among the candidates with d >= j: whoever beats a candidate there also beats it
    overall, so the best of the strata, ranked, are the best overall. Within a stratum, a walk
    reads the most experienced candidates in rank order (`candidates_rank`, an index-only scan)
    and stops at `limit` matches; only if the first `WALK_PER_RESULT * limit` of them hold fewer
    (a rare skill, a small city or country, juniors) are the stratum's matches all fetched and
    sorted: the asked-for city's or country's candidates, index-only (`candidates_city_rank`,
    `candidates_country_rank`), or else through the GIN index on skills. A candidate listing a
    skill twice counts it twice in the rank (as the plain query does), which the strata cannot
    see: those few rows come from their own index (`candidates_skills_repeat`).
    """
    skills = canonical_skills(slots.skills)
    if len(skills) > MAX_STRATIFIED_SKILLS:
        return _plain_query(slots, limit, exclude=exclude)
    p = _Params()
    where, wanted, profile = _conditions(p, slots, limit=limit, exclude=exclude)
    top = p(limit)
    matches = " AND ".join(where)
    walk = WALK_PER_RESULT * limit  # an int of ours, spliced like the constants
    # A city and a country are alike: the place's candidates are few enough to read them all.
    by_place = bool(slots.location and slots.location.strip()) or _country(slots) is not None
    ctes: list[str] = []
    branches: list[str] = []
    if by_place:
        # With a city or a country, the second step reads that place's matches once for every
        # stratum (`candidates_city_rank` or `candidates_country_rank`, whichever the planner
        # finds the fewer rows in, index-only: the place's size bounds the cost); the OFFSET 0
        # keeps the skill conditions out of that scan, since the planner misjudges correlated
        # skills ("python and sql") by tens of times, then fetches them row by row. The scan's
        # conditions are not repeated on its rows: counted twice, they would make the planner
        # expect a handful of rows and check each against every suppression and email.
        rest = " AND ".join(w for w in where if w not in profile) or "true"
        ctes.append(
            "rare AS MATERIALIZED (SELECT c.candidate_id, c.years_experience, c.skills"  # noqa: S608
            f" FROM (SELECT {_WALKED} FROM campaign.candidates c WHERE {' AND '.join(profile)}"
            f" OFFSET 0) c WHERE {rest})"
        )
    for n, stratum in enumerate(_strata(wanted, len(skills)), start=1):
        # The walk's subquery keeps to the columns `candidates_rank` holds (index-only), and its
        # LIMIT keeps the conditions from being pushed into it: a bounded walk, then the filter.
        ctes.append(
            f"walk{n} AS MATERIALIZED (SELECT c.candidate_id FROM (SELECT {_WALKED}"  # noqa: S608
            f" FROM campaign.candidates c ORDER BY {_RANK} LIMIT {walk}) c"
            f" WHERE {matches}{stratum} ORDER BY {_RANK} LIMIT {top})"
        )
        enough = f"(SELECT count(*) FROM walk{n}) < {top}"  # noqa: S608
        branches.append(f"(SELECT candidate_id FROM walk{n})")  # noqa: S608
        if by_place:
            branches.append(
                f"(SELECT c.candidate_id FROM rare c WHERE {enough}{stratum}"  # noqa: S608
                f" ORDER BY {_RANK} LIMIT {top})"
            )
            continue
        # Materialized, so PostgreSQL fetches every match by the cheapest index (GIN) rather
        # than walking the rank order for a LIMIT (which, misjudging a rare skill, reads it all).
        ctes.append(
            f"rare{n} AS MATERIALIZED (SELECT c.candidate_id, c.years_experience"  # noqa: S608
            f" FROM campaign.candidates c WHERE {matches}{stratum})"
        )
        branches.append(
            f"(SELECT c.candidate_id FROM rare{n} c WHERE {enough}"  # noqa: S608
            f" ORDER BY {_RANK} LIMIT {top})"
        )
    if wanted is not None:
        # IS TRUE, not the bare call: only then does the planner read the index's statistics
        # (almost never true) instead of guessing a third of the table.
        branches.append(
            "(SELECT c.candidate_id FROM campaign.candidates c"  # noqa: S608
            f" WHERE campaign.skills_repeat(c.skills) IS TRUE AND {matches}"
            f" ORDER BY cardinality({_matched(wanted)}) DESC, {_RANK} LIMIT {top})"
        )
    sql = (
        f"WITH {', '.join(ctes)}"  # noqa: S608
        f" SELECT {_COLUMNS} FROM ({' UNION '.join(branches)}) best"
        " JOIN campaign.candidates c USING (candidate_id)"
        f" CROSS JOIN LATERAL (SELECT {_matched(wanted)} AS matched_skills) m"
        f" ORDER BY cardinality(m.matched_skills) DESC, {_RANK} LIMIT {top}"
    )
    return Query(sql, tuple(p.values))


def _strata(wanted: str | None, k: int) -> list[str]:
    """The extra condition of each stratum: "has at least j of the k skills", j = 1..k (the
    first is already among the conditions). Without skills, one stratum: everyone."""
    if wanted is None or k == 1:
        return [""]
    strata = [""]
    for j in range(2, k):
        anyof = " OR ".join(
            "c.skills @> ARRAY[" + ", ".join(f"({wanted}::text[])[{i}]" for i in combo) + "]"
            for combo in combinations(range(1, k + 1), j)
        )
        strata.append(f" AND ({anyof})")
    strata.append(f" AND c.skills @> {wanted}::text[]")
    return strata


def build_plain_extraction_query(
    slots: Slots,
    job_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    window_days: int,
    limit: int,
) -> Query:
    """The extraction query as written first: every match is ranked, so it reads every matching
    candidate (1.3 s for one common skill among 1,000,000). `build_extraction_query` gives the
    same answer faster; this one stays for many skills at once and as the reference in tests
    and `bench.search`.

    Requested skills are alternatives: a candidate needs one of them, and ranks by how many they
    have, then by experience. The current campaign's own emails do not count as earlier contact,
    so extracting again for the same campaign returns the same people.
    """
    return _plain_query(slots, limit, exclude=Contact(job_id, window_days, campaign_id))


def _plain_query(slots: Slots, limit: int, *, exclude: Contact | None) -> Query:
    p = _Params()
    where, wanted, _ = _conditions(p, slots, limit=limit, exclude=exclude)
    sql = (
        f"SELECT {_COLUMNS} FROM campaign.candidates c"  # noqa: S608
        f" CROSS JOIN LATERAL (SELECT {_matched(wanted)} AS matched_skills) m"
        f" WHERE {' AND '.join(where)}"
        " ORDER BY cardinality(m.matched_skills) DESC, c.years_experience DESC NULLS LAST,"
        f" c.candidate_id LIMIT {p(limit)}"
    )
    return Query(sql, tuple(p.values))


def _conditions(
    p: _Params,
    slots: Slots,
    *,
    limit: int,
    exclude: Contact | None,
) -> tuple[list[str], str | None, list[str]]:
    """The WHERE conditions on `campaign.candidates c` (never none), the placeholder of the
    wanted skills (None when the slots name none), and the conditions on city, country,
    seniority and years alone. Erased candidates and addresses are always left out; with
    `exclude`, suppressed addresses and that earlier contact too.

    A candidate has one of the skills and none of `exclude_skills` (both canonical), lives in
    the city (any spelling) and in the country, when named (both apply when both are), and has
    the seniority and years asked for. `remote` adds nothing: candidates do not say where they
    want to work, so "remote python developers" are all python developers, anywhere (unless a
    city or country is named too)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    # Only `$n` placeholders and this module's constants are spliced into the SQL (hence S608).
    where: list[str] = []
    wanted = None
    skills = canonical_skills(slots.skills)
    if skills:
        wanted = p(skills)
        where.append(f"c.skills && {wanted}::text[]")
    unwanted = canonical_skills(slots.exclude_skills)
    if unwanted:
        where.append(f"NOT (c.skills && {p(unwanted)}::text[])")
    profile: list[str] = []
    if slots.location and slots.location.strip():
        profile.append(f"lower(c.city) = ANY({p(city_spellings(slots.location))}::text[])")
    country = _country(slots)
    if country:
        profile.append(f"c.country = {p(country)}")
    if slots.seniority is not None:
        profile.append(f"c.seniority = {p(slots.seniority)}")
    if slots.min_years_experience is not None:
        profile.append(f"c.years_experience >= {p(slots.min_years_experience)}")
    where += profile
    if exclude is not None:
        where.append(f"NOT {_SUPPRESSED}")
        contacted = _contacted(p, exclude)
        where.append(f"NOT EXISTS (SELECT 1 FROM campaign.emails e WHERE {contacted})")  # noqa: S608
        if exclude.outreach_days > 0:
            outreach = _contacted(p, Contact(None, exclude.outreach_days, exclude.campaign_id))
            where.append(
                f"NOT EXISTS (SELECT 1 FROM campaign.emails e WHERE e.step = 0 AND {outreach})"  # noqa: S608
            )
    else:
        where.append(f"NOT {_ERASED}")
    return where or ["true"], wanted, profile


def _country(slots: Slots) -> str | None:
    """The country asked for, upper-case (as `campaign.candidates.country` holds it)."""
    return slots.country.strip().upper() or None if slots.country else None


# An erased candidate's own row (its pseudonym address), or anyone at an address once erased
# (migration 0009; the hash is `domain.privacy.address_hash`): never selected, not even shown.
_ERASED = (
    f"(split_part(c.email, '@', 2) = '{ERASED_DOMAIN}'"  # noqa: S608 - a constant
    " OR EXISTS (SELECT 1 FROM campaign.erased_addresses era"
    " WHERE era.address_hash = campaign.address_hash(c.email)))"
)
_SUPPRESSED = (
    "(EXISTS (SELECT 1 FROM campaign.suppressions sup WHERE sup.email = lower(c.email))"  # noqa: S608
    f" OR {_ERASED})"
)


def _contacted(p: _Params, contact: Contact) -> str:
    """The condition on `campaign.emails e` that it is earlier contact with candidate `c`."""
    if contact.window_days < 0:
        raise ValueError("window_days must be zero or more")
    statuses = ", ".join(f"'{s}'" for s in CONTACTED_STATUSES)
    about = "" if contact.job_id is None else f"e.job_id = {p(contact.job_id)} AND "
    own = "" if contact.campaign_id is None else f" AND e.campaign_id <> {p(contact.campaign_id)}"
    return (
        f"{about}e.candidate_id = c.candidate_id{own} AND e.status IN ({statuses})"
        " AND coalesce(e.sent_at, e.created_at)"
        f" > now() - make_interval(days => {p(contact.window_days)})"
    )


def _matched(wanted: str | None) -> str:
    """The requested skills a candidate has, in the candidate's order (repeats kept)."""
    if wanted is None:
        return "'{}'::text[]"
    return (
        f"ARRAY(SELECT s FROM unnest(c.skills) WITH ORDINALITY AS u(s, i)"  # noqa: S608
        f" WHERE s = ANY({wanted}::text[]) ORDER BY i)"
    )


async def extract_candidates(
    conn: Connection,
    slots: Slots,
    job_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    window_days: int,
    limit: int,
    frequency_days: int = 0,
) -> list[CandidateMatch]:
    """The campaign's candidates, best first (see `build_extraction_query`)."""
    query = build_extraction_query(
        slots, job_id, campaign_id, window_days=window_days, limit=limit,
        frequency_days=frequency_days,
    )  # fmt: skip
    rows = await _fetch_custom(conn, query)
    return [CandidateMatch.model_validate(dict(row)) for row in rows]


async def search_candidates(conn: Connection, slots: Slots, *, limit: int) -> list[CandidateMatch]:
    """The best `limit` candidates who match the slots, ranked as `extract_candidates` ranks
    them, suppressed and recently contacted ones included (see `build_search_query`)."""
    rows = await _fetch_custom(conn, build_search_query(slots, limit=limit))
    return [CandidateMatch.model_validate(dict(row)) for row in rows]


async def count_matches(conn: Connection, slots: Slots, contact: Contact, *, cap: int) -> Counted:
    """How many candidates match the slots, and how many of them are neither suppressed nor
    contacted as `contact` says; at most `cap` + 1 are read, so the count stays fast on any
    pool (`Counted.is_lower_bound` says when there were more)."""
    p = _Params()
    where, _, _ = _conditions(p, slots, limit=1, exclude=None)
    reachable = (
        f"NOT {_SUPPRESSED} AND NOT EXISTS (SELECT 1 FROM campaign.emails e"  # noqa: S608
        f" WHERE {_contacted(p, contact)})"
    )
    # The reachability is worked out in the select list: only for the rows the LIMIT lets by.
    sql = (
        "SELECT count(*) AS matched, count(*) FILTER (WHERE reachable) AS reachable FROM"  # noqa: S608
        f" (SELECT {reachable} AS reachable FROM campaign.candidates c"
        f" WHERE {' AND '.join(where)} LIMIT {p(cap + 1)}) m"
    )
    rows = await _fetch_custom(conn, Query(sql, tuple(p.values)))
    return Counted(matched=rows[0]["matched"], reachable=rows[0]["reachable"], cap=cap)


async def places_with_matches(
    conn: Connection,
    slots: Slots,
    contact: Contact,
    *,
    places: int,
    cap: int = 5_000,
) -> list[tuple[str, int]]:
    """Where else the campaign would find recipients: the cities with the most candidates who
    match the slots but for their city (in the country, when one is named) and whom the campaign
    could write to (as `contact` excludes), most first, at most `places`. Reads at most `cap`
    candidates, so the counts are a sample's on a large pool (only their order matters)."""
    anywhere = slots.model_copy(update={"location": None})
    p = _Params()
    where, _, _ = _conditions(p, anywhere, limit=1, exclude=contact)
    sql = (
        "SELECT city, count(*) AS candidates FROM"  # noqa: S608 - constants and placeholders
        f" (SELECT c.city FROM campaign.candidates c WHERE {' AND '.join(where)}"
        f"  AND c.city IS NOT NULL LIMIT {p(cap)}) m"
        f" GROUP BY city ORDER BY candidates DESC, city LIMIT {p(places)}"
    )
    rows = await _fetch_custom(conn, Query(sql, tuple(p.values)))
    return [(row["city"], row["candidates"]) for row in rows]


async def reach_of(
    conn: Connection, candidate_ids: Sequence[uuid.UUID], contact: Contact
) -> dict[uuid.UUID, Reach]:
    """For each candidate: the reason their address is suppressed, and the latest earlier
    contact (as `contact` says) with the title of the job it was about."""
    p = _Params()
    ids = p(list(candidate_ids))
    sql = (
        "SELECT c.candidate_id, sup.reason AS suppressed, last.contacted_at,"  # noqa: S608
        " last.title AS contacted_about FROM campaign.candidates c"
        " LEFT JOIN campaign.suppressions sup ON sup.email = lower(c.email)"
        " LEFT JOIN LATERAL (SELECT coalesce(e.sent_at, e.created_at) AS contacted_at, j.title"
        " FROM campaign.emails e JOIN campaign.jobs j ON j.job_id = e.job_id"
        f" WHERE {_contacted(p, contact)}"
        " ORDER BY coalesce(e.sent_at, e.created_at) DESC, e.email_id LIMIT 1) last ON true"
        f" WHERE c.candidate_id = ANY({ids}::uuid[])"
    )
    rows = await conn.fetch(sql, *p.values)
    return {
        row["candidate_id"]: Reach(
            suppressed=row["suppressed"],
            contacted_at=row["contacted_at"],
            contacted_about=row["contacted_about"],
        )
        for row in rows
    }


async def _fetch_custom(conn: Connection, query: Query) -> list[asyncpg.Record]:
    """The query's rows, planned for these very values: the best plan for "python" (walk the
    rank index, stop early) is the worst for a skill nobody has, and a prepared statement's
    generic plan, which PostgreSQL may switch to after five runs of the same SQL, would fit only
    one of them."""
    async with conn.transaction():
        previous = await conn.fetchval(
            "SELECT current_setting('plan_cache_mode'),"
            " set_config('plan_cache_mode', 'force_custom_plan', true)"
        )
        rows: list[asyncpg.Record] = await conn.fetch(query.sql, *query.args)
        await conn.execute("SELECT set_config('plan_cache_mode', $1, true)", previous)
    return rows


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
