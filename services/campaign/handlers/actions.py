"""The campaign service's workflow actions: extract a campaign's recipients, then draft an email to
each (drafting.py). They are transactional: every write goes through the step's connection, so it
commits with the step's result and a retried or redelivered step does nothing twice. Drafting by a
language model is the exception: it stores each draft at once, idempotently."""

from __future__ import annotations

from collections.abc import Callable

from services.campaign import review
from services.campaign.composing import SenderIdentity, TemplateComposer, UnsubscribeLinks
from services.campaign.drafting import Drafter, InferenceModel, generate_drafts
from services.campaign.extraction import (
    JobClarification,
    extract_candidates,
    extraction_limit,
    resolve_job,
)
from shared.action_worker import ActionCall, ActionFailed, ActionWorker
from shared.campaign_actions import (
    EXPIRE_DRAFTS,
    EXTRACT_CANDIDATES,
    GENERATE_DRAFTS,
    ExpireDraftsInput,
    ExpireDraftsOutput,
    ExtractCandidatesInput,
    ExtractCandidatesOutput,
    GenerateDraftsInput,
    GenerateDraftsOutput,
)
from shared.db import Connection
from shared.events import Slots
from shared.rpc import ServiceClient
from shared.settings import Settings

OWNER = "campaign"
SCHEMA = "campaign"


def make_worker(
    settings: Settings, client: Callable[[], ServiceClient | None] = lambda: None
) -> ActionWorker:
    """The campaign actions, configured from `settings`; `subscribe` it to run them. `client`
    gives the service's request/reply client once started: drafts ask the inference service."""
    worker = ActionWorker(OWNER, SCHEMA)
    drafter = Drafter(
        TemplateComposer(),
        SenderIdentity.from_settings(settings),
        UnsubscribeLinks.from_settings(settings),
        model=InferenceModel(client, settings) if settings.llm_configured else None,
    )

    @worker.implements(EXTRACT_CANDIDATES.name)
    async def extract(given: ExtractCandidatesInput, call: ActionCall) -> ExtractCandidatesOutput:
        return await extract_recipients(
            _conn(call), given, settings, correlation_id=call.request.correlation_id
        )

    # Model calls take minutes for a large campaign: outside a transaction, each draft is stored
    # as soon as it is written (drafting.py), so progress shows and a retry resumes.
    @worker.implements(GENERATE_DRAFTS.name, transactional=drafter.model is None)
    async def generate(given: GenerateDraftsInput, call: ActionCall) -> GenerateDraftsOutput:
        db = call.conn if call.conn is not None else call.pool
        return await generate_drafts(
            db, given.campaign_id, drafter, correlation_id=call.request.correlation_id
        )

    @worker.implements(EXPIRE_DRAFTS.name)
    async def expire(given: ExpireDraftsInput, call: ActionCall) -> ExpireDraftsOutput:
        expired = await review.expire_drafts(_conn(call), given.campaign_id)
        return ExpireDraftsOutput(expired=expired)

    return worker


def _conn(call: ActionCall) -> Connection:
    assert call.conn is not None, "campaign actions are transactional"
    return call.conn


async def extract_recipients(
    conn: Connection,
    given: ExtractCandidatesInput,
    settings: Settings,
    *,
    correlation_id: str | None = None,
) -> ExtractCandidatesOutput:
    """Create the campaign for the job the slots name and store its ranked recipients."""
    resolved = await resolve_job(conn, given.slots.job_title)
    if isinstance(resolved, JobClarification):
        raise ActionFailed("needs_clarification", resolved.question, retryable=False)
    await conn.execute(
        "INSERT INTO campaign.campaigns"
        " (campaign_id, job_id, name, status, slots, created_by, correlation_id)"
        " VALUES ($1, $2, $3, 'generating', $4::jsonb, $5, $6)"
        " ON CONFLICT (campaign_id) DO NOTHING",
        given.campaign_id, resolved.job_id, f"{resolved.title} outreach",
        given.slots.model_dump_json(), given.requested_by, correlation_id,
    )  # fmt: skip
    # A campaign made by an earlier visit keeps its job: its recipients were chosen for it.
    job_id = await conn.fetchval(
        "SELECT job_id FROM campaign.campaigns WHERE campaign_id = $1", given.campaign_id
    )
    if job_id != resolved.job_id:
        raise ActionFailed(
            "job_changed",
            f"campaign {given.campaign_id} was created for another job ({job_id})",
            retryable=False,
        )
    limit = extraction_limit(
        given.slots.limit,
        default=settings.campaign_extraction_default_limit,
        maximum=settings.campaign_extraction_max_limit,
    )
    matches = await extract_candidates(
        conn, given.slots, resolved.job_id, given.campaign_id,
        window_days=settings.campaign_contact_window_days, limit=limit,
    )  # fmt: skip
    await conn.executemany(
        "INSERT INTO campaign.recipients (campaign_id, candidate_id, rank, matched_skills)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, candidate_id) DO NOTHING",
        [
            (given.campaign_id, m.candidate_id, rank, m.matched_skills)
            for rank, m in enumerate(matches, start=1)
        ],
    )
    recipients: int = await conn.fetchval(
        "SELECT count(*) FROM campaign.recipients WHERE campaign_id = $1", given.campaign_id
    )
    if recipients == 0:
        raise ActionFailed(
            "no_candidates",
            f"no candidate matches {describe_slots(given.slots)} who was not contacted about "
            f"{resolved.title} in the last {settings.campaign_contact_window_days} days",
            retryable=False,
        )
    return ExtractCandidatesOutput(
        job_id=resolved.job_id, job_title=resolved.title, recipients=recipients
    )


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
