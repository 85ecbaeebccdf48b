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
from shared import cursors, outbox
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
from shared.topics import WORKFLOW_SIGNALS

Wake = Callable[[uuid.UUID], None]


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
            if steering.changed and steering.status == "cancelled":
                await emails.end_unsent(
                    conn, campaign_id, "cancelled", ["drafted", "approved", "waiting"]
                )
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
            changed = await campaigns.resume_stopped(conn)
            for campaign_id in changed:
                wake(campaign_id)
            return SendingStop(paused=False, campaigns=changed)
        async with conn.transaction():
            changed = await campaigns.stop_all(conn, command.requested_by)
        # After the commit: claims under way held the rows' share locks, so the count is final.
        flying = await emails.in_flight(conn, changed)
    return SendingStop(paused=True, campaigns=changed, in_flight=flying)


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
        refs = await campaigns.campaign_refs(conn, command.requested_by)
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
