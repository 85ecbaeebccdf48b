"""The campaign service's review commands: list a campaign's emails, save an edit of a draft,
decide one draft or all that are pending. Each decision commits with its events (`email.approved`
per approval, and the run's `review_finished` signal when no draft is left) through the campaign
outbox. Also: each campaign's review deadline, recorded from its run's progress events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.campaign.domain import review
from services.campaign.domain.composing import Draft, FooterContext
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.steering import may_decide
from services.campaign.handlers.drafting import Identities
from services.campaign.mailer import Mailboxes
from services.campaign.repository import SCHEMA, campaigns, emails, sequences
from shared import audit, cursors, outbox
from shared.contracts.audit import AuditAction
from shared.contracts.campaign import (
    BULK_ITEMS,
    REVIEW_FINISHED,
    BulkDecisionView,
    DecideAllCommand,
    DecideDraftCommand,
    EditDraftCommand,
    EmailApproved,
    EmailDecisionView,
    EmailPage,
    EmailView,
    ListEmailsCommand,
    ListRevisionsCommand,
    RevisionList,
    RevisionView,
    SequenceStopped,
    StopSequenceCommand,
)
from shared.contracts.common import Event
from shared.contracts.workflow import WorkflowRunChanged, WorkflowSignal
from shared.db import Connection
from shared.errors import Refused
from shared.service import CommandHandler, with_pool
from shared.settings import Settings
from shared.topics import EMAIL_APPROVED, WORKFLOW_SIGNALS

_BULK_ACTIONS: dict[str, AuditAction] = {
    "approve": "emails.approved_all",
    "reject": "emails.rejected_all",
}


class ReviewCommands:
    """The handlers, given what an edited draft's footer needs (the sender identity of a
    campaign's creator, and the unsubscribe links); each call is given the pool. A refusal (no
    such campaign, a conflicting decision) is raised as `Refused`."""

    def __init__(self, identities: Identities, links: UnsubscribeLinks) -> None:
        self._identities = identities
        self._links = links

    async def list_emails(self, pool: asyncpg.Pool, command: ListEmailsCommand) -> EmailPage:
        after = cursors.decode_rank(command.cursor) if command.cursor else None
        async with pool.acquire() as conn:
            await campaigns.require_campaign(conn, command.campaign_id)
            items = await emails.list_emails(
                conn, command.campaign_id, command.status, after, command.limit + 1
            )
        more = len(items) > command.limit
        items = items[: command.limit]
        last = items[-1] if more else None
        cursor = cursors.encode(last.rank or 0, last.email_id) if last is not None else None
        return EmailPage(items=items, next_cursor=cursor)

    async def decide_draft(
        self, pool: asyncpg.Pool, command: DecideDraftCommand
    ) -> EmailDecisionView:
        edit = review.check_edit(command.decision, command.subject, command.body)
        async with pool.acquire() as conn, conn.transaction():
            locked = await campaigns.lock_campaign(conn, command.campaign_id)
            may_decide(locked.status)
            stored = await emails.get_email(conn, command.campaign_id, command.email_id)
            review.check_follow_up_decision(stored.view.step, command.decision)
            current = Draft(stored.view.subject, stored.view.body)
            proposed = None
            if edit is not None:
                footer = self._footer(command.email_id, stored, locked.created_by)
                proposed = review.edited_draft(current, edit, footer)
            outcome = review.decide(
                command.email_id, stored.view.status, command.decision, current, proposed
            )
            if isinstance(outcome, review.AlreadyDecided):
                view = stored.view
            else:
                if outcome.draft != current:
                    await emails.keep_revision(
                        conn, command.email_id, current, outcome.draft, command.reviewed_by
                    )
                view = await emails.store_decision(
                    conn, command.email_id, outcome, command.reviewed_by
                )
                events = _approvals([view], command.reviewed_by, command.correlation_id)
                events += _decision_audit(command, current, outcome, locked.team)
                await _after_decisions(conn, command.campaign_id, events, command.correlation_id)
            counts = await emails.review_counts(conn, command.campaign_id)
        return EmailDecisionView(**view.model_dump(), counts=counts)

    async def edit_draft(self, pool: asyncpg.Pool, command: EditDraftCommand) -> EmailView:
        """Save a draft's new subject and/or body, footer put back, without deciding it: nothing
        is published, and the draft stays pending."""
        edit = review.check_draft_edit(command.subject, command.body)
        async with pool.acquire() as conn, conn.transaction():
            locked = await campaigns.lock_campaign(conn, command.campaign_id)
            may_decide(locked.status)
            stored = await emails.get_email(conn, command.campaign_id, command.email_id)
            review.check_editable(command.email_id, stored.view.status)
            current = Draft(stored.view.subject, stored.view.body)
            footer = self._footer(command.email_id, stored, locked.created_by)
            proposed = review.edited_draft(current, edit, footer)
            if proposed != current:
                await emails.keep_revision(
                    conn, command.email_id, current, proposed, command.edited_by
                )
                await audit.record(
                    conn, SCHEMA, "email.edited", "email", command.email_id,
                    **_edit_audit(
                        command.campaign_id, command.edited_by, current, proposed, locked.team
                    ),
                    correlation_id=command.correlation_id,
                )  # fmt: skip
            return await emails.store_edit(conn, command.email_id, proposed, proposed != current)

    async def list_revisions(
        self, pool: asyncpg.Pool, command: ListRevisionsCommand
    ) -> RevisionList:
        async with pool.acquire() as conn:
            await emails.get_email(conn, command.campaign_id, command.email_id)  # or not_found
            rows = await emails.revisions(conn, command.campaign_id, command.email_id)
        items = [RevisionView.model_validate(dict(row)) for row in rows]
        return RevisionList(email_id=command.email_id, items=items)

    async def stop_sequence(
        self, pool: asyncpg.Pool, command: StopSequenceCommand
    ) -> SequenceStopped:
        """Stop one recipient's follow-ups not sent yet; stopping again stops none."""
        async with pool.acquire() as conn, conn.transaction():
            locked = await campaigns.lock_campaign(conn, command.campaign_id)
            stopped = await sequences.stop_recipient(
                conn, command.campaign_id, command.email_id, f"stopped by {command.stopped_by}"
            )
            if stopped:  # stopping again stops none: no change to record
                await audit.record(
                    conn, SCHEMA, "sequence.stopped", "email", command.email_id,
                    actor=command.stopped_by, campaign_id=command.campaign_id,
                    run_id=command.campaign_id, team=locked.team, detail={"stopped": stopped},
                )  # fmt: skip
        if stopped is None:
            raise Refused(
                f"campaign {command.campaign_id} has no email {command.email_id}", code="not_found"
            )
        return SequenceStopped(email_id=command.email_id, stopped=stopped)

    def _footer(
        self, email_id: uuid.UUID, stored: emails.StoredEmail, owner: str | None
    ) -> FooterContext:
        link = self._links.url(email_id)
        sender = self._identities(owner)
        return FooterContext(sender, stored.job_title, stored.found_via, link)

    async def decide_all(self, pool: asyncpg.Pool, command: DecideAllCommand) -> BulkDecisionView:
        async with pool.acquire() as conn, conn.transaction():
            locked = await campaigns.lock_campaign(conn, command.campaign_id)
            may_decide(locked.status)
            decided = await emails.decide_pending(
                conn, command.campaign_id, command.decision, command.reviewed_by
            )
            events = _approvals(decided, command.reviewed_by, command.correlation_id)
            if decided:
                bulk = audit.entry(
                    _BULK_ACTIONS[command.decision], "campaign", command.campaign_id,
                    actor=command.reviewed_by,
                    campaign_id=command.campaign_id, run_id=command.campaign_id, team=locked.team,
                    detail={"decision": command.decision, "decided": len(decided)},
                    correlation_id=command.correlation_id,
                )  # fmt: skip
                events.append(audit.outbox_event(bulk))
                await _after_decisions(conn, command.campaign_id, events, command.correlation_id)
            counts = await emails.review_counts(conn, command.campaign_id)
        return BulkDecisionView(
            campaign_id=command.campaign_id,
            decision=command.decision,
            decided=len(decided),
            review=counts,
            items=decided[:BULK_ITEMS],
        )


async def _after_decisions(
    conn: Connection,
    campaign_id: uuid.UUID,
    events: list[tuple[str, str, Event]],
    correlation_id: str | None,
) -> None:
    """In the deciding transaction: the approvals' events and, when this decision left no draft
    pending, the campaign's next status and its run's signal. The campaign lock makes "left no
    draft pending" true for exactly one transaction."""
    finished = review.review_finished(await emails.review_counts(conn, campaign_id))
    if finished is not None:
        await campaigns.move_campaign(conn, campaign_id, finished.campaign_status)
        signal = WorkflowSignal(
            run_id=campaign_id,
            name=REVIEW_FINISHED,
            payload=dict(finished.payload),
            sent_by="campaign",
            **_correlation(correlation_id),
        )
        events.append((WORKFLOW_SIGNALS.name, str(campaign_id), signal))
    await outbox.enqueue_many(conn, SCHEMA, events)


def _approvals(
    decided: list[EmailView], reviewed_by: str, correlation_id: str | None
) -> list[tuple[str, str, Event]]:
    return [
        (
            EMAIL_APPROVED.name,
            str(view.campaign_id),
            EmailApproved(
                campaign_id=view.campaign_id,
                email_id=view.email_id,
                approved_by=reviewed_by,
                edited=view.edited,
                **_correlation(correlation_id),
            ),
        )
        for view in decided
        if view.status == "approved"
    ]


def _decision_audit(
    command: DecideDraftCommand, current: Draft, outcome: review.Decided, team: str
) -> list[tuple[str, str, Event]]:
    """The audit entries of one decision: the edit it carries (if it changed the text), then the
    decision itself."""
    correlation: dict[str, Any] = {"correlation_id": command.correlation_id}
    entries = []
    if outcome.draft != current:
        edit = _edit_audit(command.campaign_id, command.reviewed_by, current, outcome.draft, team)
        entries.append(
            audit.entry("email.edited", "email", command.email_id, **edit, **correlation)
        )
    action: AuditAction = "email.approved" if outcome.status == "approved" else "email.rejected"
    entries.append(
        audit.entry(
            action, "email", command.email_id, actor=command.reviewed_by,
            campaign_id=command.campaign_id, run_id=command.campaign_id, team=team,
            detail={"edited": outcome.edited}, **correlation,
        )
    )  # fmt: skip
    return [audit.outbox_event(e) for e in entries]


def _edit_audit(
    campaign_id: uuid.UUID, by: str, before: Draft, after: Draft, team: str
) -> dict[str, Any]:
    """An edit's audit fields: who, the campaign (its run has the same id) and its team, the text
    before and after."""
    return {
        "actor": by,
        "campaign_id": campaign_id,
        "run_id": campaign_id,
        "team": team,
        "detail": {
            "before": {"subject": before.subject, "body": before.body},
            "after": {"subject": after.subject, "body": after.body},
        },
    }


def _correlation(correlation_id: str | None) -> dict[str, Any]:
    return {"correlation_id": correlation_id} if correlation_id else {}


async def store_review_deadlines(pool: asyncpg.Pool, events: list[WorkflowRunChanged]) -> None:
    """When an email campaign's run starts waiting for review, the campaign records the run's
    deadline (`review_deadline_at` in its view), so the campaign service knows it without asking
    the workflow service (`handlers/runs.py` reads the runs' changes)."""
    latest: dict[uuid.UUID, datetime] = {}  # a run's last deadline in the batch wins
    for event in events:
        found = review.review_deadline(event)
        if found is not None:
            latest[found[0]] = found[1]
    if latest:
        await campaigns.store_review_deadlines(pool, list(latest.items()))


def review_command_handlers(
    settings: Settings, mailboxes: Mailboxes
) -> dict[type[BaseModel], CommandHandler]:
    """The review commands for `build_app(commands=...)`; an edit's footer names the sender
    identity (of `mailboxes`) of the campaign's creator."""
    commands = ReviewCommands(
        lambda owner: mailboxes.for_user(owner).identity, UnsubscribeLinks.from_settings(settings)
    )

    return {
        ListEmailsCommand: with_pool(commands.list_emails),
        DecideDraftCommand: with_pool(commands.decide_draft),
        DecideAllCommand: with_pool(commands.decide_all),
        EditDraftCommand: with_pool(commands.edit_draft),
        StopSequenceCommand: with_pool(commands.stop_sequence),
        ListRevisionsCommand: with_pool(commands.list_revisions),
    }
