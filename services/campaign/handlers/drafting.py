"""Drafting a campaign's emails, one per recipient: by the language model, asked through the
inference service, when one is configured, else from the job's template. Every draft gets the
system's footer, and each records which of the two wrote it (`emails.drafted_by`).

Model mode runs outside a transaction (the step takes minutes): each draft is stored as soon as it
exists, so the campaign's counts grow draft by draft, and a retried step skips recipients that
already have one. An answer the model gets wrong, or no answer, costs that recipient the model's
draft, not the campaign: the template writes theirs. It is not asked again: the inference service
already retries failed calls, and it caches answers, so the same prompt would get the same answer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import asyncpg

from services.campaign.domain.composing import (
    CandidateProfile,
    Draft,
    DraftError,
    FooterContext,
    JobOpening,
    ModelAnswerRejected,
    SenderIdentity,
    TemplateComposer,
    finalise,
)
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.messages import make_message_id
from services.campaign.domain.prompts import model_messages, parse_model_answer
from services.campaign.domain.sequences import follow_up_draft, step_email_id
from services.campaign.model import DraftModel, ModelUnavailable
from services.campaign.repository import campaigns, candidates, emails
from shared.action_worker import ActionFailed
from shared.contracts.campaign import GenerateDraftsOutput
from shared.db import Database

log = logging.getLogger(__name__)

DraftMode = Literal["model", "template"]
# Model calls in flight per campaign: enough to hide latency, few enough not to crowd out the
# inference service's other callers (a recruiter waiting on a chat answer).
MODEL_CONCURRENCY = 4


Identities = Callable[[str | None], SenderIdentity]


@dataclass(frozen=True)
class Drafter:
    """Writes one recipient's draft, footer included; `model` None means template mode. A
    campaign's drafts are written as its creator's sender identity (`identities`, given the
    campaign's `created_by`; see SENDER_IDENTITIES_FILE), the one its emails are sent from."""

    composer: TemplateComposer
    sender: SenderIdentity
    links: UnsubscribeLinks
    model: DraftModel | None = None
    concurrency: int = MODEL_CONCURRENCY
    identities: Identities | None = None

    def as_sender_of(self, owner: str | None) -> Drafter:
        """This drafter writing as the identity of the campaign's creator."""
        if self.identities is None:
            return self
        return replace(self, sender=self.identities(owner))

    def from_template(self, candidate: CandidateProfile, job: JobOpening) -> Draft:
        try:
            return self.composer.compose(candidate, job, self.sender)
        except DraftError as exc:
            raise ActionFailed("template_failed", exc.reason, retryable=False) from exc

    async def compose(
        self, candidate: CandidateProfile, job: JobOpening, correlation_id: str
    ) -> tuple[Draft, DraftMode]:
        """The model's draft, or the template's when there is no model or its answer is unusable."""
        if self.model is None:
            return self.from_template(candidate, job), "template"
        messages = model_messages(candidate, job, self.sender)
        try:
            answer = await self.model.answer(messages, correlation_id)
            return parse_model_answer(answer), "model"
        except (ModelUnavailable, ModelAnswerRejected) as exc:
            log.warning("model draft for job %s unusable (%s); using the template", job.job_id, exc)
            return self.from_template(candidate, job), "template"

    def finish(
        self,
        draft: Draft,
        candidate: CandidateProfile,
        job: JobOpening,
        email_id: uuid.UUID,
        *,
        notice: bool = True,
    ) -> Draft:
        """The footer, in the candidate's language; with the Art. 14 notice on a first email."""
        link = self.links.url(email_id)
        language = candidate.writing_language
        context = FooterContext(self.sender, job.title, candidate.found_via, link, language, notice)
        return finalise(draft, context)


async def generate_drafts(
    db: Database, campaign_id: uuid.UUID, drafter: Drafter, *, correlation_id: str
) -> GenerateDraftsOutput:
    """Draft an email to every recipient that has none; the campaign then awaits review. In
    template mode `db` is the step's connection and all drafts commit with the step; in model
    mode it is the pool and each draft commits on its own, as soon as it is written."""
    job_row = await candidates.job_of_campaign(db, campaign_id)
    if job_row is None:
        raise ActionFailed(
            "unknown_campaign", f"campaign {campaign_id} does not exist", retryable=False
        )
    job = JobOpening.model_validate(dict(job_row))
    drafter = drafter.as_sender_of(await emails.campaign_owner(db, campaign_id))
    waits = await campaigns.follow_up_days(db, campaign_id)
    pending = await candidates.undrafted_recipients(db, campaign_id)

    async def draft_rows(candidate_row: asyncpg.Record) -> list[emails.DraftRow]:
        """The recipient's first email, then its follow-ups (template-written, in its thread)."""
        candidate = CandidateProfile.model_validate(dict(candidate_row))
        candidate_id: uuid.UUID = candidate_row["candidate_id"]
        first, mode = await drafter.compose(candidate, job, correlation_id)
        rows: list[emails.DraftRow] = []
        for step, wait in enumerate([None, *waits]):
            # Derived, not random: a regenerated draft keeps its id, unsubscribe link and
            # Message-ID.
            email_id = step_email_id(campaign_id, candidate_id, step)
            draft = (
                first
                if step == 0
                else follow_up_draft(
                    step,
                    len(waits),
                    first.subject,
                    candidate,
                    job.title,
                    drafter.sender,
                    candidate.writing_language,
                )
            )
            draft = drafter.finish(draft, candidate, job, email_id, notice=step == 0)
            rows.append((
                email_id, campaign_id, job.job_id, candidate_id, candidate_row["email"],
                draft.subject, draft.body, make_message_id(email_id, drafter.sender.email),
                mode if step == 0 else "template", step, wait,
            ))  # fmt: skip
        return rows

    if drafter.model is None:
        await emails.insert_drafts(db, [r for row in pending for r in await draft_rows(row)])
    else:
        limit = asyncio.Semaphore(drafter.concurrency)

        async def one(candidate_row: asyncpg.Record) -> None:
            async with limit:
                rows = await draft_rows(candidate_row)
            await emails.insert_drafts(db, rows)  # committed at once: progress is visible

        await _all(one(row) for row in pending)
    # Ready for review. The mode is 'model' if the model wrote any draft, counting drafts
    # written by an earlier attempt of the step.
    drafted, by_model = await emails.drafting_summary(db, campaign_id)
    mode: DraftMode = "model" if by_model else "template"
    await campaigns.move_campaign(db, campaign_id, "awaiting_review", generation_mode=mode)
    return GenerateDraftsOutput(drafted=drafted, mode=mode)


async def _all(jobs: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines together; the first failure cancels the rest and is raised as is (an
    ActionFailed must reach the action worker unwrapped, which a TaskGroup would not do)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
