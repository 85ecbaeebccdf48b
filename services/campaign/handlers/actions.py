"""The campaign service's workflow actions: extract a campaign's recipients, draft an email to each
(drafting.py), expire the drafts left at the review deadline. They are transactional: every write
goes through the step's connection, so it commits with the step's result and a retried or
redelivered step does nothing twice. Drafting by a language model is the exception: it stores
each draft at once, idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from services.campaign.domain.composing import TemplateComposer
from services.campaign.domain.extraction import (
    MAX_CLARIFICATION_OPTIONS,
    JobClarification,
    audience_question,
    describe_slots,
    extraction_limit,
    job_question,
)
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.handlers.drafting import Drafter, generate_drafts
from services.campaign.mailer import Mailboxes
from services.campaign.model import InferenceModel
from services.campaign.repository import SCHEMA, campaigns, candidates, emails
from shared.action_worker import ActionCall, ActionFailed, ActionWorker, needs_input
from shared.contracts.campaign import (
    CLOSE_CAMPAIGN,
    EXPIRE_DRAFTS,
    EXTRACT_CANDIDATES,
    GENERATE_DRAFTS,
    CloseCampaignInput,
    CloseCampaignOutput,
    ExpireDraftsInput,
    ExpireDraftsOutput,
    ExtractCandidatesInput,
    ExtractCandidatesOutput,
    GenerateDraftsInput,
    GenerateDraftsOutput,
)
from shared.db import Connection
from shared.errors import Refused
from shared.rpc import ServiceClient
from shared.settings import Settings

OWNER = "campaign"


def make_worker(
    settings: Settings,
    client: Callable[[], ServiceClient | None] = lambda: None,
    mailboxes: Mailboxes | None = None,
) -> ActionWorker:
    """The campaign actions, configured from `settings`; `subscribe` it to run them. `client`
    gives the service's request/reply client once started: drafts ask the inference service.
    `mailboxes`: the sender identities drafts are written as (read from `settings` if None)."""
    worker = ActionWorker(OWNER, SCHEMA)
    mailboxes = mailboxes or Mailboxes.from_settings(settings)
    drafter = Drafter(
        TemplateComposer(),
        mailboxes.default.identity,
        UnsubscribeLinks.from_settings(settings),
        model=InferenceModel(client, settings) if settings.llm_configured else None,
        identities=lambda owner: mailboxes.for_user(owner).identity,
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
        expired = await expire_drafts(_conn(call), given.campaign_id)
        return ExpireDraftsOutput(expired=expired)

    @worker.implements(CLOSE_CAMPAIGN.name)
    async def close(given: CloseCampaignInput, call: ActionCall) -> CloseCampaignOutput:
        return await close_campaign(_conn(call), given.campaign_id)

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
    resolved = await candidates.resolve_job(conn, given.slots.job_title)
    if isinstance(resolved, JobClarification):
        raise needs_input(job_question(resolved))  # the run waits for the recruiter's answer
    job_id = await campaigns.create_campaign(
        conn, given.campaign_id, resolved.job_id, f"{resolved.title} outreach", given.slots,
        created_by=given.requested_by, correlation_id=correlation_id,
        follow_up_days=given.follow_up_days, team=given.team,
    )  # fmt: skip
    # A campaign made by an earlier visit keeps its job: its recipients were chosen for it.
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
    matches = await candidates.extract_candidates(
        conn, given.slots, resolved.job_id, given.campaign_id,
        window_days=settings.campaign_contact_window_days, limit=limit,
        frequency_days=settings.send_contact_frequency_days,
    )  # fmt: skip
    recipients = await campaigns.add_recipients(conn, given.campaign_id, matches)
    if recipients == 0:
        # Nobody here: ask which other city, where candidates would match (else give up).
        contact = candidates.Contact(
            resolved.job_id, settings.campaign_contact_window_days, given.campaign_id,
            settings.send_contact_frequency_days,
        )  # fmt: skip
        places = await candidates.places_with_matches(
            conn, given.slots, contact, places=MAX_CLARIFICATION_OPTIONS + 1
        )
        question = audience_question(given.slots, resolved.title, places)
        if question is not None:
            raise needs_input(question)  # the run waits for the recruiter's answer
        raise ActionFailed(
            "no_candidates",
            f"no candidate matches {describe_slots(given.slots)} who was not contacted about "
            f"{resolved.title} in the last {settings.campaign_contact_window_days} days"
            + _frequency_note(settings.send_contact_frequency_days),
            retryable=False,
        )
    return ExtractCandidatesOutput(
        job_id=resolved.job_id, job_title=resolved.title, recipients=recipients
    )


def _frequency_note(days: int) -> str:
    return f", nor about any job in the last {days} days" if days > 0 else ""


async def expire_drafts(conn: Connection, campaign_id: uuid.UUID) -> int:
    """At the review deadline: every pending draft expires (and is never sent) and the campaign
    is expired. Returns how many drafts expired; a campaign that does not exist expires none."""
    try:
        await campaigns.lock_campaign(conn, campaign_id)
    except Refused:
        return 0
    expired = await emails.end_unsent(conn, campaign_id, "expired", ["drafted"])
    await campaigns.move_campaign(conn, campaign_id, "expired")
    return expired


async def close_campaign(conn: Connection, campaign_id: uuid.UUID) -> CloseCampaignOutput:
    """The monitoring window is over: the campaign is completed (one a recruiter closed, or
    cancelled meanwhile, stays as it is), with its final counts."""
    locked = await campaigns.lock_campaign(conn, campaign_id)
    if locked.status == "monitoring":
        await campaigns.move_campaign(conn, campaign_id, "completed", ended_by="monitoring window")
    view = await campaigns.campaign_view(conn, campaign_id)
    assert view is not None, "locked above"
    return CloseCampaignOutput(status=view.status, counts=view.counts.model_dump())
