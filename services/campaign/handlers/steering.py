"""Steering a campaign: pause, resume, cancel, close, the emergency stop, and the campaign list.

A pause or cancel takes the campaign's row lock, which waits for the claims under way
(`repository.emails.next_due` share-locks the row): once it commits, no email is claimed for
sending, so after the answer no further email leaves. Emails already handed to the SMTP server
(status 'sending') may still be accepted; the answer counts them as `in_flight`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg

from services.campaign.domain.finding import MAX_OPTIONS, find_campaigns, waiting_for
from services.campaign.domain.steering import steer
from services.campaign.repository import SCHEMA, campaigns, emails
from shared import audit, cursors, outbox
from shared.contracts.audit import AuditAction
from shared.contracts.campaign import (
    MONITORING_CLOSED,
    CampaignPage,
    CampaignStatusAnswer,
    CampaignStatusCommand,
    ListCampaignsCommand,
    SendingStop,
    SteerCampaignCommand,
    SteeringResult,
    StopAllSendingCommand,
)
from shared.contracts.workflow import WorkflowSignal
from shared.db import Connection
from shared.topics import WORKFLOW_SIGNALS

Wake = Callable[[uuid.UUID], None]
AUDITED_IDS = 200  # campaign ids an emergency stop's audit entry lists
_AUDITED: dict[str, AuditAction] = {
    "pause": "campaign.paused",
    "resume": "campaign.resumed",
    "cancel": "campaign.cancelled",
    "close": "campaign.closed",
}


async def steer_campaign(
    pool: asyncpg.Pool, command: SteerCampaignCommand, wake: Wake
) -> SteeringResult:
    campaign_id = command.campaign_id
    async with pool.acquire() as conn:
        async with conn.transaction():
            locked = await campaigns.lock_campaign(conn, campaign_id)
            correlation_id = locked.correlation_id
            steering = steer(locked.status, locked.paused, command.action)
            if steering.changed:
                await campaigns.apply_steering(conn, campaign_id, steering, command.requested_by)
            detail: dict[str, object] = {"status_before": locked.status}
            if steering.changed and steering.status == "cancelled":
                detail["emails_cancelled"] = await emails.end_unsent(
                    conn, campaign_id, "cancelled", ["drafted", "approved", "waiting"]
                )
            if steering.changed:  # again (no change) is not recorded
                await audit.record(
                    conn, SCHEMA, _AUDITED[command.action], "campaign", campaign_id,
                    actor=command.requested_by, campaign_id=campaign_id, run_id=campaign_id,
                    team=locked.team, detail=detail,
                    correlation_id=command.correlation_id or correlation_id,
                )  # fmt: skip
            if steering.changed and steering.status == "completed":
                # The run waits in `monitoring` for this signal; it then ends too.
                signal = WorkflowSignal(
                    run_id=campaign_id,
                    name=MONITORING_CLOSED,
                    payload={"closed_by": command.requested_by},
                    sent_by="campaign",
                    **({"correlation_id": correlation_id} if correlation_id else {}),
                )
                await outbox.enqueue(conn, SCHEMA, WORKFLOW_SIGNALS.name, str(campaign_id), signal)
            stopped = command.action in ("pause", "cancel")
            flying = await emails.in_flight(conn, [campaign_id]) if stopped else 0
        view = await campaigns.campaign_view(conn, campaign_id)
    assert view is not None, "the campaign was locked above"
    if command.action == "resume" and steering.changed:
        wake(campaign_id)  # its approved emails are due now: do not wait for the poll
    return SteeringResult(
        action=command.action, changed=steering.changed, in_flight=flying, campaign=view
    )


async def stop_all_sending(
    pool: asyncpg.Pool, command: StopAllSendingCommand, wake: Wake
) -> SendingStop:
    async with pool.acquire() as conn:
        if command.resume:
            async with conn.transaction():
                changed = await campaigns.resume_stopped(conn)
                await _record_stop(conn, "sending.resumed", command, changed)
            for campaign_id in changed:
                wake(campaign_id)
            return SendingStop(paused=False, campaigns=changed)
        async with conn.transaction():
            changed = await campaigns.stop_all(conn, command.requested_by)
            await _record_stop(conn, "sending.stopped", command, changed)
        # After the commit: claims under way held the rows' share locks, so the count is final.
        flying = await emails.in_flight(conn, changed)
    return SendingStop(paused=True, campaigns=changed, in_flight=flying)


async def _record_stop(
    conn: Connection, action: AuditAction, command: StopAllSendingCommand, changed: list[uuid.UUID]
) -> None:
    """The emergency stop (or its resume) is one entry: how many campaigns it paused (or
    resumed), and the first AUDITED_IDS of them; recorded even when it changed none, as the
    admin's decision."""
    await audit.record(
        conn, SCHEMA, action, "sending", "all", actor=command.requested_by,
        detail={"campaigns": len(changed), "campaign_ids": [str(c) for c in changed[:AUDITED_IDS]]},
    )  # fmt: skip


async def list_campaigns(pool: asyncpg.Pool, command: ListCampaignsCommand) -> CampaignPage:
    after = cursors.decode_time(command.cursor) if command.cursor else None
    async with pool.acquire() as conn:
        items = await campaigns.list_campaigns(
            conn, command.model_copy(update={"limit": command.limit + 1}), after
        )
    more = len(items) > command.limit
    items = items[: command.limit]
    return CampaignPage(
        items=items,
        next_cursor=cursors.encode(items[-1].created_at, items[-1].campaign_id) if more else None,
    )


async def campaign_status(
    pool: asyncpg.Pool, command: CampaignStatusCommand
) -> CampaignStatusAnswer:
    """The campaign a question means and what it is waiting for; several: which one?"""
    async with pool.acquire() as conn:
        refs = await campaigns.campaign_refs(conn, command.requested_by, command.team)
        found = find_campaigns(refs, command.slots, command.message)
        if found.one is None:
            options = [await campaigns.campaign_view(conn, r.campaign_id) for r in found.matches]
            shown = [view for view in options[:MAX_OPTIONS] if view is not None]
            return CampaignStatusAnswer(
                options=shown, question=found.question, matches=len(found.matches)
            )
        view = await campaigns.campaign_view(conn, found.one.campaign_id)
    assert view is not None, "found among the campaigns just read"
    return CampaignStatusAnswer(campaign=view, waiting_for=waiting_for(view), matches=1)
