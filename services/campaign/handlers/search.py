"""Searching the talent pool (the `candidate_search` intent): how many candidates match and the
best of them, found by the campaign's own extraction rules, with suppressed and recently
contacted candidates shown and flagged rather than hidden."""

from __future__ import annotations

import asyncpg

from services.campaign.domain.extraction import JobMatch
from services.campaign.domain.searching import Reach, answer, shown_limit
from services.campaign.repository import candidates
from shared.contracts.campaign import (
    SEARCH_COUNT_CAP,
    CampaignJob,
    CandidateSearchAnswer,
    SearchCandidatesCommand,
)
from shared.settings import Settings


async def search_candidates(
    pool: asyncpg.Pool, command: SearchCandidatesCommand, settings: Settings
) -> CandidateSearchAnswer:
    """Count and rank the matches. Contact is flagged when it was about the job the search names
    (a title naming several open jobs, or none, names no job: the search still answers), else
    about any job, within the campaign's contact window."""
    slots = command.slots
    limit = shown_limit(command.limit, slots.limit)
    async with pool.acquire() as conn:
        job = None
        if slots.job_title and slots.job_title.strip():
            resolved = await candidates.resolve_job(conn, slots.job_title)
            if isinstance(resolved, JobMatch):
                job = CampaignJob(job_id=resolved.job_id, title=resolved.title)
        contact = candidates.Contact(
            job.job_id if job else None, settings.campaign_contact_window_days
        )
        matches = await candidates.search_candidates(conn, slots, limit=limit)
        counted = await candidates.count_matches(conn, slots, contact, cap=SEARCH_COUNT_CAP)
        reach = await candidates.reach_of(conn, [m.candidate_id for m in matches], contact)
    found = [(m, reach.get(m.candidate_id, Reach())) for m in matches]
    return answer(slots, job, counted, found)
