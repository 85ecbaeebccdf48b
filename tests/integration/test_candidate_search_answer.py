"""A talent-pool search (`search_candidates`) finds the people a campaign with the same slots
finds, in the same order, and also shows the suppressed and recently contacted ones, flagged, in
their rank place; it counts the matches up to a cap.

The equivalence runs on the pool of test_candidate_search.py (ties, missing years, repeated
skills, suppressions and contact history); the flags on a handful of hand-made candidates.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.campaign.handlers.search import search_candidates
from services.campaign.repository.candidates import Contact, count_matches, extract_candidates
from shared.contracts.campaign import (
    MAX_SEARCH_SHOWN,
    SEARCH_COUNT_CAP,
    CandidateSearchAnswer,
    SearchCandidatesCommand,
)
from shared.contracts.intent import Slots
from shared.settings import Settings
from tests.integration.test_candidate_search import (
    POOL,
    WINDOW_DAYS,
    make_pool,
    reference,
    searches,
)
from tests.support.campaign_rows import (
    add_campaign,
    add_candidate,
    add_email,
    add_job,
    add_suppression,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def settings_90(prepared: Settings) -> Settings:
    """The contact window the pool's history was written for."""
    return prepared.model_copy(update={"campaign_contact_window_days": WINDOW_DAYS})


async def search(
    db: asyncpg.Pool, settings: Settings, slots: Slots, limit: int = 10
) -> CandidateSearchAnswer:
    return await search_candidates(db, SearchCandidatesCommand(slots=slots, limit=limit), settings)


async def test_a_search_finds_what_a_campaign_with_the_same_slots_finds(
    db: asyncpg.Pool, tag: str, settings_90: Settings
) -> None:
    async with db.acquire() as conn:
        pool = await make_pool(conn, tag)
    everyone = dataclasses.replace(pool, suppressed=set(), contacted=set())
    for asked in searches(pool):
        slots = asked.model_copy(update={"job_title": f"Search {tag}"})
        found = await search(db, settings_90, slots, limit=MAX_SEARCH_SHOWN)
        # A new campaign about the job: none of the history is its own.
        async with db.acquire() as conn:
            campaign = await extract_candidates(
                conn, slots, pool.job_id, uuid.uuid4(), window_days=WINDOW_DAYS, limit=POOL
            )

        assert found.job is not None
        assert found.job.job_id == pool.job_id
        ranked = reference(everyone, slots, POOL)  # flagged or not, best first
        hits = [(h.candidate_id, h.matched_skills) for h in found.matches]
        assert hits == ranked[:MAX_SEARCH_SHOWN], slots
        unflagged = [h for h in found.matches if h.suppressed is None and h.contacted_at is None]
        shown = [(h.candidate_id, h.matched_skills) for h in unflagged]
        assert shown == [(c.candidate_id, c.matched_skills) for c in campaign][: len(shown)]
        assert (found.total, found.total_is_lower_bound) == (len(ranked), False)
        assert found.available == len(campaign), slots
        for h in found.matches:
            person = next(p for p in pool.people if p.candidate_id == h.candidate_id)
            assert (h.suppressed is not None) == (person.email.lower() in pool.suppressed)


async def hand_made(db: asyncpg.Pool, tag: str) -> dict[str, uuid.UUID]:
    """Five Berlin candidates with the tag's skill, most experienced first: Ada (free), Bea
    (unsubscribed), Cy (mailed about the job 5 days ago), Di (mailed about another job 2 days
    ago) and Ed (mailed about the job 200 days ago); and the two jobs."""
    skill = f"elixir-{tag}"
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        job = await add_job(conn, f"Elixir Engineer {tag}", skills=[skill])
        other = await add_job(conn, f"Data Analyst {tag}", skills=["sql"])
        ids = {}
        for years, name in enumerate(["Ed", "Di", "Cy", "Bea", "Ada"], start=5):
            ids[name] = await add_candidate(
                conn, f"{name} Test", email=f"{name.lower()}-{tag}@Example.com", years=years,
                skills=[skill, "sql"],
            )  # fmt: skip
        await add_suppression(conn, f"bea-{tag}@example.com")
        for name, about, days in (("Cy", job, 5), ("Di", other, 2), ("Ed", job, 200)):
            campaign = await add_campaign(conn, about)
            await add_email(
                conn, campaign, about, ids[name], to_address=f"{name.lower()}-{tag}@example.com",
                status="sent", created_at=now - timedelta(days=days),
            )  # fmt: skip
    return {**ids, "job": job, "other": other}


def flags(answer: CandidateSearchAnswer) -> list[tuple[str, str | None, str | None]]:
    return [(h.full_name.split()[0], h.suppressed, h.contacted_about) for h in answer.matches]


async def test_suppressed_and_contacted_candidates_are_shown_flagged_in_their_place(
    db: asyncpg.Pool, tag: str, settings_90: Settings
) -> None:
    ids = await hand_made(db, tag)
    slots = Slots(skills=[f"elixir-{tag}"], location="Berlin", job_title=f"elixir engineer {tag}")
    found = await search(db, settings_90, slots)

    title = f"Elixir Engineer {tag}"
    assert found.job is not None
    assert (found.job.job_id, found.job.title) == (ids["job"], title)
    assert flags(found) == [
        ("Ada", None, None),
        ("Bea", "unsubscribed", None),
        ("Cy", None, title),  # about this job, within the window
        ("Di", None, None),  # about another job
        ("Ed", None, None),  # too long ago
    ]
    cy = found.matches[2]
    assert cy.contacted_at is not None
    assert timedelta(days=4) < datetime.now(UTC) - cy.contacted_at < timedelta(days=6)
    assert (found.total, found.available, found.total_is_lower_bound) == (5, 3, False)
    assert found.matches[0].why == (
        "has 1 of 1 skills asked for (elixir-" + tag + "); 9 years of experience; in Berlin"
    )
    assert found.summary.startswith(f"5 candidates match elixir-{tag} in Berlin, 3 of them free")
    assert "Bea Test (suppressed), Cy Test (contacted recently)" in found.summary

    # The campaign for the job writes to the unflagged ones, in the same order.
    async with db.acquire() as conn:
        campaign = await extract_candidates(
            conn, slots, ids["job"], uuid.uuid4(), window_days=WINDOW_DAYS, limit=10
        )
    assert [c.candidate_id for c in campaign] == [ids["Ada"], ids["Di"], ids["Ed"]]


async def test_a_search_naming_no_job_flags_contact_about_any_job(
    db: asyncpg.Pool, tag: str, settings_90: Settings
) -> None:
    await hand_made(db, tag)
    await add_job(db, f"Twin Role {tag} one")
    await add_job(db, f"Twin Role {tag} two")
    skill = f"elixir-{tag}"
    expected = [
        ("Ada", None, None),
        ("Bea", "unsubscribed", None),
        ("Cy", None, f"Elixir Engineer {tag}"),
        ("Di", None, f"Data Analyst {tag}"),
        ("Ed", None, None),
    ]
    # No title, a title naming no open job, and one naming two: no job, and no failure.
    for title in (None, f"Astronaut {tag}", f"twin role {tag}"):
        found = await search(db, settings_90, Slots(skills=[skill], job_title=title))
        assert found.job is None, title
        assert flags(found) == expected, title
        assert (found.total, found.available) == (5, 2)


async def test_the_count_is_capped_and_the_slots_limit_wins(
    db: asyncpg.Pool, tag: str, settings_90: Settings
) -> None:
    skill = f"go-{tag}"
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "candidates",
            schema_name="campaign",
            columns=["candidate_id", "full_name", "email", "years_experience", "skills", "source"],
            records=[
                (uuid.uuid4(), f"Gopher {n}", f"g{n}-{tag}@example.com", n % 30, [skill], "test")
                for n in range(SEARCH_COUNT_CAP + 1)
            ],
        )
        await conn.execute("ANALYZE campaign.candidates")
        few = await count_matches(conn, Slots(skills=[skill]), Contact(None, WINDOW_DAYS), cap=5)
        exact = await count_matches(
            conn, Slots(skills=[skill], min_years_experience=29), Contact(None, 90), cap=500
        )

    assert (few.total, few.is_lower_bound) == (5, True)
    assert (exact.total, exact.is_lower_bound, exact.available) == (333, False, 333)

    found = await search(db, settings_90, Slots(skills=[skill], limit=3), limit=20)
    assert (found.total, found.total_is_lower_bound) == (SEARCH_COUNT_CAP, True)
    assert found.available == SEARCH_COUNT_CAP
    assert len(found.matches) == 3  # "the three best" wins over the command's 20
    assert [h.years_experience for h in found.matches] == [29, 29, 29]
    assert found.summary.startswith(f"More than 10,000 candidates match {skill}; the top 3: ")

    many = await search(db, settings_90, Slots(skills=[skill], limit=5_000))
    assert len(many.matches) == MAX_SEARCH_SHOWN
