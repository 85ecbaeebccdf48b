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
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import asyncpg

from services.campaign.composing import (
    CandidateProfile,
    Draft,
    DraftError,
    FooterContext,
    JobOpening,
    ModelAnswerRejected,
    SenderIdentity,
    TemplateComposer,
    UnsubscribeLinks,
    finalise,
    model_messages,
    parse_model_answer,
)
from services.campaign.mailer import make_message_id
from shared.action_worker import ActionFailed
from shared.campaign_actions import GenerateDraftsOutput
from shared.db import Connection
from shared.inference import ChatMessage, InferCommand, ModelRequest
from shared.rpc import ServiceClient, ServiceTimeout
from shared.settings import Settings

log = logging.getLogger(__name__)

DraftMode = Literal["model", "template"]
# Model calls in flight per campaign: enough to hide latency, few enough not to crowd out the
# inference service's other callers (a recruiter waiting on a chat answer).
MODEL_CONCURRENCY = 4
# One draft is under 150 words; the JSON wrapping adds little.
DRAFT_MAX_TOKENS = 600
# Database access for the loop: the step's connection (template mode) or the pool (model mode).
Database = Connection | asyncpg.Pool


class ModelUnavailable(Exception):
    """The model gave no answer (not configured, failed, or too slow)."""


class DraftModel(Protocol):
    async def answer(self, messages: list[ChatMessage], correlation_id: str) -> str:
        """The model's raw answer to `messages`, or ModelUnavailable."""


class InferenceModel:
    """Asks the inference service (never a model directly), over Kafka request/reply."""

    def __init__(self, client: Callable[[], ServiceClient | None], settings: Settings) -> None:
        self._client = client  # a provider: the client exists once the service has started
        self._settings = settings

    async def answer(self, messages: list[ChatMessage], correlation_id: str) -> str:
        client = self._client()
        model = self._settings.llm_model
        if client is None or model is None:
            raise ModelUnavailable("no language model is configured")
        # Not ModelRequest.build: its whitespace normalisation suits typed questions (cache hits),
        # while this prompt is ours, and its numbered rules and data block keep their layout.
        request = ModelRequest(
            model=model,
            messages=messages,
            temperature=self._settings.llm_temperature,
            max_tokens=min(DRAFT_MAX_TOKENS, self._settings.llm_max_tokens),
        )
        command = InferCommand(
            request=request, purpose="campaign_draft", correlation_id=correlation_id
        )
        try:
            reply = await client.request(
                "inference", command, timeout=self._settings.inference_timeout_seconds
            )
        except ServiceTimeout as exc:
            raise ModelUnavailable(str(exc)) from exc
        if not reply.ok:
            error = reply.error
            raise ModelUnavailable(f"{error.code}: {error.message}" if error else "no answer")
        return str(reply.data.get("answer", ""))


@dataclass(frozen=True)
class Drafter:
    """Writes one recipient's draft, footer included; `model` None means template mode."""

    composer: TemplateComposer
    sender: SenderIdentity
    links: UnsubscribeLinks
    model: DraftModel | None = None
    concurrency: int = MODEL_CONCURRENCY

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
        self, draft: Draft, candidate: CandidateProfile, job: JobOpening, email_id: uuid.UUID
    ) -> Draft:
        link = self.links.url(email_id)
        return finalise(draft, FooterContext(self.sender, job.title, candidate.found_via, link))


_INSERT = (
    "INSERT INTO campaign.emails (email_id, campaign_id, job_id, candidate_id, to_address,"
    " subject, body, status, message_id, drafted_by)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, 'drafted', $8, $9)"
    " ON CONFLICT (campaign_id, candidate_id) DO NOTHING"
)
DraftRow = tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, str, str, str, str, DraftMode]


async def generate_drafts(
    db: Database, campaign_id: uuid.UUID, drafter: Drafter, *, correlation_id: str
) -> GenerateDraftsOutput:
    """Draft an email to every recipient that has none; the campaign then awaits review. In
    template mode `db` is the step's connection and all drafts commit with the step; in model
    mode it is the pool and each draft commits on its own, as soon as it is written."""
    job = await _job(db, campaign_id)
    pending = await db.fetch(
        "SELECT c.* FROM campaign.recipients r JOIN campaign.candidates c USING (candidate_id)"
        " WHERE r.campaign_id = $1 AND NOT EXISTS (SELECT 1 FROM campaign.emails e"
        "  WHERE e.campaign_id = r.campaign_id AND e.candidate_id = r.candidate_id)"
        " ORDER BY r.rank",
        campaign_id,
    )

    async def draft_row(candidate_row: asyncpg.Record) -> DraftRow:
        candidate = CandidateProfile.model_validate(dict(candidate_row))
        candidate_id: uuid.UUID = candidate_row["candidate_id"]
        # Derived, not random: a regenerated draft keeps its id, unsubscribe link and Message-ID.
        email_id = uuid.uuid5(campaign_id, str(candidate_id))
        draft, mode = await drafter.compose(candidate, job, correlation_id)
        draft = drafter.finish(draft, candidate, job, email_id)
        return (
            email_id, campaign_id, job.job_id, candidate_id, candidate_row["email"],
            draft.subject, draft.body, make_message_id(email_id, drafter.sender.email), mode,
        )  # fmt: skip

    if drafter.model is None:
        rows = [await draft_row(row) for row in pending]
        await db.executemany(_INSERT, rows)
    else:
        limit = asyncio.Semaphore(drafter.concurrency)

        async def one(candidate_row: asyncpg.Record) -> None:
            async with limit:
                row = await draft_row(candidate_row)
            await db.execute(_INSERT, *row)  # committed at once: progress is visible

        await _all(one(row) for row in pending)
    return await _finish(db, campaign_id)


async def _job(db: Database, campaign_id: uuid.UUID) -> JobOpening:
    row = await db.fetchrow(
        "SELECT j.* FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
        " WHERE c.campaign_id = $1",
        campaign_id,
    )
    if row is None:
        raise ActionFailed(
            "unknown_campaign", f"campaign {campaign_id} does not exist", retryable=False
        )
    return JobOpening.model_validate(dict(row))


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


async def _finish(db: Database, campaign_id: uuid.UUID) -> GenerateDraftsOutput:
    """Mark the campaign ready for review. Its mode is 'model' if the model wrote any draft,
    counting drafts written by an earlier attempt of the step."""
    row = await db.fetchrow(
        "SELECT count(*) AS drafted, coalesce(bool_or(drafted_by = 'model'), false) AS by_model"
        " FROM campaign.emails WHERE campaign_id = $1",
        campaign_id,
    )
    assert row is not None
    mode: DraftMode = "model" if row["by_model"] else "template"
    await db.execute(
        "UPDATE campaign.campaigns SET status = 'awaiting_review', generation_mode = $2,"
        " updated_at = now() WHERE campaign_id = $1 AND status = 'generating'",
        campaign_id,
        mode,
    )
    return GenerateDraftsOutput(drafted=row["drafted"], mode=mode)
