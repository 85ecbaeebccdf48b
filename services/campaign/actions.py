"""The campaign service's workflow actions: extract a campaign's recipients, then draft an email to
each. Both are transactional: every write goes through the step's connection, so it commits with
the step's result and a retried or redelivered step does nothing twice."""

from __future__ import annotations

import uuid

from services.campaign import review
from services.campaign.composing import (
    CandidateProfile,
    DraftError,
    FooterContext,
    JobOpening,
    SenderIdentity,
    TemplateComposer,
    UnsubscribeLinks,
    finalise,
)
from services.campaign.extraction import (
    JobClarification,
    extract_candidates,
    extraction_limit,
    resolve_job,
)
from services.campaign.mailer import make_message_id
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
from shared.settings import Settings

OWNER = "campaign"
SCHEMA = "campaign"


def make_worker(settings: Settings) -> ActionWorker:
    """The campaign actions, configured from `settings`; `subscribe` it to run them."""
    worker = ActionWorker(OWNER, SCHEMA)
    composer = TemplateComposer()
    sender = SenderIdentity.from_settings(settings)
    links = UnsubscribeLinks.from_settings(settings)

    @worker.implements(EXTRACT_CANDIDATES.name)
    async def extract(given: ExtractCandidatesInput, call: ActionCall) -> ExtractCandidatesOutput:
        return await extract_recipients(
            _conn(call), given, settings, correlation_id=call.request.correlation_id
        )

    @worker.implements(GENERATE_DRAFTS.name)
    async def generate(given: GenerateDraftsInput, call: ActionCall) -> GenerateDraftsOutput:
        return await generate_drafts(_conn(call), given.campaign_id, composer, sender, links)

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


async def generate_drafts(
    conn: Connection,
    campaign_id: uuid.UUID,
    composer: TemplateComposer,
    sender: SenderIdentity,
    links: UnsubscribeLinks,
) -> GenerateDraftsOutput:
    """Draft an email, footer included, to every recipient that has none, from the job's
    template; the campaign then awaits review."""
    job_row = await conn.fetchrow(
        "SELECT j.* FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
        " WHERE c.campaign_id = $1",
        campaign_id,
    )
    if job_row is None:
        raise ActionFailed(
            "unknown_campaign", f"campaign {campaign_id} does not exist", retryable=False
        )
    job = JobOpening.model_validate(dict(job_row))
    pending = await conn.fetch(
        "SELECT c.* FROM campaign.recipients r JOIN campaign.candidates c USING (candidate_id)"
        " WHERE r.campaign_id = $1 AND NOT EXISTS (SELECT 1 FROM campaign.emails e"
        "  WHERE e.campaign_id = r.campaign_id AND e.candidate_id = r.candidate_id)"
        " ORDER BY r.rank",
        campaign_id,
    )
    rows = []
    for candidate_row in pending:
        candidate = CandidateProfile.model_validate(dict(candidate_row))
        candidate_id: uuid.UUID = candidate_row["candidate_id"]
        # Derived, not random: a regenerated draft keeps its id, unsubscribe link and Message-ID.
        email_id = uuid.uuid5(campaign_id, str(candidate_id))
        try:
            draft = composer.compose(candidate, job, sender)
        except DraftError as exc:
            raise ActionFailed("template_failed", exc.reason, retryable=False) from exc
        footer = FooterContext(sender, job.title, candidate.found_via, links.url(email_id))
        draft = finalise(draft, footer)
        rows.append((
            email_id, campaign_id, job.job_id, candidate_id, candidate_row["email"],
            draft.subject, draft.body, make_message_id(email_id, sender.email),
        ))  # fmt: skip
    await conn.executemany(
        "INSERT INTO campaign.emails (email_id, campaign_id, job_id, candidate_id, to_address,"
        " subject, body, status, message_id) VALUES ($1, $2, $3, $4, $5, $6, $7, 'drafted', $8)"
        " ON CONFLICT (campaign_id, candidate_id) DO NOTHING",
        rows,
    )
    await conn.execute(
        "UPDATE campaign.campaigns SET status = 'awaiting_review', generation_mode = 'template',"
        " updated_at = now() WHERE campaign_id = $1",
        campaign_id,
    )
    drafted: int = await conn.fetchval(
        "SELECT count(*) FROM campaign.emails WHERE campaign_id = $1", campaign_id
    )
    return GenerateDraftsOutput(drafted=drafted, mode="template")
