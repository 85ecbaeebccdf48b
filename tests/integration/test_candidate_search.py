"""The fast extraction query (issue 16) gives exactly the answer of a straightforward ranking.

A few thousand candidates of this test's own (tagged skills and towns), with many ties in years
of experience, missing years, skills listed twice, countries (some at odds with the town, some
missing), suppressed addresses and earlier contact
about the job (recent, old, by this very campaign, drafts and rejections), are searched with
many slot combinations and limits; `extract_candidates` must return the same candidates, in the
same order and with the same matched skills, as the rules applied in Python to every row, and
as the plain query (`build_plain_extraction_query`) that was the campaign's extraction before.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.campaign.domain.status import CONTACTED_STATUSES
from services.campaign.repository.candidates import (
    MAX_STRATIFIED_SKILLS,
    build_extraction_query,
    build_plain_extraction_query,
    extract_candidates,
)
from shared.contracts.intent import Slots
from shared.db import Connection
from tests.support.campaign_rows import add_campaign, add_job

pytestmark = pytest.mark.integration

POOL = 3_000
WINDOW_DAYS = 90
SENIORITIES = ("junior", "mid", "senior", "staff")
COLUMNS = (
    "candidate_id", "full_name", "email", "city", "seniority", "years_experience", "skills",
    "source", "country",
)  # fmt: skip
COUNTRIES = ("ES", "ES", "DE", "PT", None)


@dataclass(frozen=True)
class Person:
    candidate_id: uuid.UUID
    email: str
    city: str
    seniority: str | None
    years: int | None
    skills: list[str]
    country: str | None


@dataclass(frozen=True)
class Pool:
    job_id: uuid.UUID
    campaign_id: uuid.UUID
    skills: list[str]
    towns: list[str]
    people: list[Person]
    suppressed: set[str]
    contacted: set[uuid.UUID]  # within the window, by another campaign for the job


async def make_pool(conn: Connection, tag: str) -> Pool:
    rng = random.Random(16)
    skills = [f"k{n}-{tag}" for n in range(6)]
    towns = [f"Town{n}-{tag}" for n in range(3)]
    weights = [40, 25, 15, 8, 2, 1]  # k0 common, k5 rare
    people = []
    for n in range(POOL):
        mine = [s for s, w in zip(skills, weights, strict=True) if rng.random() < w / 100]
        if n % 97 == 0 and mine:
            mine.append(mine[0])  # a repeated skill counts twice in the rank
        town = rng.choice(towns)
        people.append(
            Person(
                candidate_id=uuid.uuid4(),
                email=f"p{n}-{tag}@Example.com",
                city=town.upper() if n % 7 == 0 else town,
                seniority=rng.choice((*SENIORITIES, None)),
                years=None if n % 23 == 0 else rng.randrange(0, 8),  # many ties
                skills=rng.sample(mine, len(mine)),
                country=rng.choice(COUNTRIES),  # whatever the town
            )
        )
    await conn.copy_records_to_table(
        "candidates",
        schema_name="campaign",
        columns=list(COLUMNS),
        records=[
            (
                p.candidate_id,
                f"Person {n}",
                p.email,
                p.city,
                p.seniority,
                p.years,
                p.skills,
                "test",
                p.country,
            )
            for n, p in enumerate(people)
        ],
    )
    suppressed = {p.email.lower() for n, p in enumerate(people) if n % 11 == 0}
    await conn.executemany(
        "INSERT INTO campaign.suppressions (email, reason) VALUES ($1, 'unsubscribed')",
        [(email,) for email in suppressed],
    )
    job_id = await add_job(conn, f"Search {tag}")
    other_job = await add_job(conn, f"Other search {tag}")
    campaign_id = await add_campaign(conn, job_id)
    earlier = await add_campaign(conn, job_id)
    elsewhere = await add_campaign(conn, other_job)
    now = datetime.now(UTC)
    history = [  # (campaign, job, status, days ago): only the first two exclude
        (earlier, job_id, "sent", 10),
        (earlier, job_id, "drafted", 1),
        (earlier, job_id, "sent", 200),
        (earlier, job_id, "rejected", 1),
        (elsewhere, other_job, "sent", 1),
        (campaign_id, job_id, "drafted", 0),
    ]
    emails = []
    contacted = set()
    for n, p in enumerate(people):
        if n % 5 == 0:
            campaign, job, status, days = history[(n // 5) % len(history)]
            emails.append((campaign, job, p.candidate_id, status, now - timedelta(days=days)))
            in_window = days < WINDOW_DAYS and campaign != campaign_id
            if job == job_id and status in CONTACTED_STATUSES and in_window:
                contacted.add(p.candidate_id)
    await conn.executemany(
        "INSERT INTO campaign.emails (campaign_id, job_id, candidate_id, to_address, subject, body,"
        " status, created_at) VALUES ($1, $2, $3, 'x@example.com', 'Hi', 'Hello', $4, $5)",
        emails,
    )
    await conn.execute("ANALYZE campaign.candidates")
    return Pool(job_id, campaign_id, skills, towns, people, suppressed, contacted)


def reference(pool: Pool, slots: Slots, limit: int) -> list[tuple[uuid.UUID, list[str]]]:
    """The extraction rules applied to every row in Python: (candidate, matched skills)."""
    wanted = [s.lower() for s in slots.skills]
    unwanted = {s.strip().lower() for s in slots.exclude_skills}
    found = []
    for p in pool.people:
        matched = [s for s in p.skills if s in wanted]
        if wanted and not matched:
            continue
        if unwanted & set(p.skills):
            continue
        if slots.location and p.city.lower() != slots.location.lower():
            continue
        if slots.country and p.country != slots.country:
            continue  # remote asks nothing of the candidates
        if slots.seniority and p.seniority != slots.seniority:
            continue
        if slots.min_years_experience is not None and (
            p.years is None or p.years < slots.min_years_experience
        ):
            continue
        if p.email.lower() in pool.suppressed or p.candidate_id in pool.contacted:
            continue
        found.append((p, matched))
    found.sort(
        key=lambda pm: (-len(pm[1]), pm[0].years is None, -(pm[0].years or 0), pm[0].candidate_id)
    )
    return [(p.candidate_id, matched) for p, matched in found[:limit]]


def searches(pool: Pool) -> list[Slots]:
    k, town = pool.skills, pool.towns[0]
    return [
        Slots(skills=[k[0]]),
        Slots(skills=[k[5]]),  # rare
        Slots(skills=[f"nobody-{k[0]}"]),
        Slots(skills=[k[0], k[1]]),
        Slots(skills=[k[1], k[0], k[2]]),
        Slots(skills=[k[0], k[1], k[2], k[3]]),
        Slots(skills=k[:5]),  # more than MAX_STRATIFIED_SKILLS: the plain query
        Slots(skills=[k[0].upper(), k[4]], location=town.lower()),
        Slots(skills=[k[0]], location=town, seniority="senior"),
        Slots(skills=[k[1], k[2]], min_years_experience=5),
        Slots(skills=[k[0], k[3]], location=pool.towns[1], min_years_experience=2),
        Slots(skills=[k[2], k[0], k[1]], location=town, seniority="mid"),
        Slots(location=town),
        Slots(location=pool.towns[2], seniority="mid", min_years_experience=3),
        Slots(skills=[k[0]], country="ES"),
        Slots(skills=[k[5]], country="ES"),  # rare, in a country
        Slots(skills=[k[0], k[1]], exclude_skills=[k[2]]),
        Slots(skills=[k[1], k[0], k[2]], country="DE", exclude_skills=[f" {k[3].upper()} "]),
        Slots(skills=[k[0]], location=town, country="PT", exclude_skills=[k[1]]),  # both apply
        Slots(skills=[k[0], k[3]], remote=True, exclude_skills=[k[1], k[2]]),
        Slots(skills=k[:5], country="ES", exclude_skills=[k[5]]),  # the plain query
        Slots(location=town, country="DE", remote=True),
        Slots(location=pool.towns[1], seniority="senior", exclude_skills=[k[0]]),
    ]


async def test_the_fast_query_ranks_exactly_like_the_rules(db: asyncpg.Pool, tag: str) -> None:
    async with db.acquire() as conn:
        pool = await make_pool(conn, tag)
        assert len(pool.skills[:5]) > MAX_STRATIFIED_SKILLS  # one search takes the plain query
        for slots in searches(pool):
            for limit in (1, 7, 50, 500):
                expected = reference(pool, slots, limit)
                found = await extract_candidates(
                    conn, slots, pool.job_id, pool.campaign_id, window_days=WINDOW_DAYS,
                    limit=limit,
                )  # fmt: skip
                plain = build_plain_extraction_query(
                    slots, pool.job_id, pool.campaign_id, window_days=WINDOW_DAYS, limit=limit
                )
                plain_rows = await conn.fetch(plain.sql, *plain.args)

                got = [(c.candidate_id, c.matched_skills) for c in found]
                assert got == expected, (slots, limit)
                assert [(r["candidate_id"], r["matched_skills"]) for r in plain_rows] == expected
                if slots.skills != [f"nobody-{pool.skills[0]}"]:
                    assert expected, (slots, limit)  # every search but one finds someone


async def test_a_repeated_skill_outranks_more_experience(db: asyncpg.Pool, tag: str) -> None:
    """Counted twice, as in the plain query, though the strata look at distinct skills."""
    skill, other = f"r-{tag}", f"o-{tag}"
    async with db.acquire() as conn:
        job_id = await add_job(conn, f"Repeat {tag}")
        campaign_id = await add_campaign(conn, job_id)
        rows = [
            (uuid.uuid4(), f"twice-{tag}@example.com", [skill, other, skill], 1),
            (uuid.uuid4(), f"both-{tag}@example.com", [other, skill], 2),
            *[(uuid.uuid4(), f"once{n}-{tag}@example.com", [skill], 10) for n in range(30)],
        ]
        await conn.copy_records_to_table(
            "candidates",
            schema_name="campaign",
            columns=["candidate_id", "full_name", "email", "years_experience", "skills", "source"],
            records=[(cid, "X", email, years, s, "test") for cid, email, s, years in rows],
        )
        one = await extract_candidates(
            conn, Slots(skills=[skill]), job_id, campaign_id, window_days=90, limit=3
        )
        two = await extract_candidates(
            conn, Slots(skills=[skill, other]), job_id, campaign_id, window_days=90, limit=3
        )

    assert [c.email for c in one][:1] == [f"twice-{tag}@example.com"]
    assert one[0].matched_skills == [skill, skill]
    assert [c.email for c in two][:2] == [f"twice-{tag}@example.com", f"both-{tag}@example.com"]


def test_the_strata_cover_every_count_of_requested_skills() -> None:
    """One walk, and one fetch of all matches, per "at least j of the three skills"."""
    job, campaign = uuid.uuid4(), uuid.uuid4()
    sql = build_extraction_query(
        Slots(skills=["a", "b", "c"]), job, campaign, window_days=90, limit=5
    ).sql

    assert [f"walk{j} AS" in sql for j in (1, 2, 3, 4)] == [True, True, True, False]
    assert [f"rare{j} AS" in sql for j in (1, 2, 3, 4)] == [True, True, True, False]
    assert "c.skills @> ARRAY[($1::text[])[1], ($1::text[])[2]]" in sql
    assert "c.skills @> $1::text[]" in sql
    assert "campaign.skills_repeat(c.skills) IS TRUE" in sql
