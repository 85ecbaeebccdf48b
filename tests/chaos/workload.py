"""What the system does while the chaos suite breaks it: two campaigns through the gateway as a
recruiter runs them (one with a follow-up, some drafts rejected; one cancelled mid-way), the
calendar that makes follow-ups due, and workflow runs started a few at a time, some of them
left waiting for a person."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx

from services.workflow.engine import Engine, StartRequest
from tests.support.api import start_campaign, wait_for_state
from tests.support.campaign_rows import add_audience

REJECT_EVERY = 10  # one draft in ten of the main campaign is rejected
WAITING_EVERY = 10  # one run in ten waits for an approval that never comes
CANCEL_AFTER = 3  # the second campaign is cancelled once a third of it is sent


@dataclass
class Campaigns:
    main: uuid.UUID  # N recipients, one follow-up, some drafts rejected
    cancelled: uuid.UUID  # cancelled mid-way
    rejected: list[uuid.UUID] = field(default_factory=list)  # first emails a reviewer rejected
    cancelled_at: float | None = None  # time.monotonic() when the cancel was answered


async def retrying(call: Callable[[], Awaitable[httpx.Response]], what: str) -> httpx.Response:
    """Call until it answers 200: the gateway or the service behind it may be down a while."""
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(httpx.HTTPError):
            response = await call()
            if response.status_code == 200:
                return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never succeeded")
        await asyncio.sleep(0.2)


async def first_emails(db: asyncpg.Pool, campaign_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await db.fetch(
        "SELECT email_id FROM campaign.emails WHERE campaign_id = $1 AND step = 0"
        " ORDER BY to_address",
        campaign_id,
    )
    return [row["email_id"] for row in rows]


async def in_review(api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, size: int) -> uuid.UUID:
    audience = await add_audience(db, tag, size)
    run_id = await start_campaign(api, {**audience.slots, "limit": size}, follow_up_days=[1])
    await wait_for_state(api, run_id, "await_review", timeout=180)
    return uuid.UUID(run_id)


async def reviewed_campaigns(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, recipients: int
) -> Campaigns:
    """Both campaigns drafted and reviewed: every tenth first email of the main one rejected (its
    follow-up with it), the rest of both approved. Sending starts with the approvals."""
    main, cancelled = await asyncio.gather(
        in_review(api, db, tag, recipients), in_review(api, db, tag, max(5, recipients // 5))
    )
    campaigns = Campaigns(main, cancelled)
    for email_id in (await first_emails(db, main))[::REJECT_EVERY]:
        response = await api.post(f"/api/campaigns/{main}/emails/{email_id}/reject")
        assert response.status_code == 200, response.text
        campaigns.rejected.append(email_id)
    for campaign_id in (main, cancelled):
        response = await api.post(f"/api/campaigns/{campaign_id}/approve-all")
        assert response.status_code == 200, response.text
    return campaigns


async def cancel_mid_way(api: httpx.AsyncClient, db: asyncpg.Pool, campaigns: Campaigns) -> None:
    """Cancel the second campaign once a third of its first emails are sent."""
    total = len(await first_emails(db, campaigns.cancelled))
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            sent = await db.fetchval(
                "SELECT count(*) FROM campaign.emails WHERE campaign_id = $1 AND status = 'sent'",
                campaigns.cancelled,
            )
            if sent * CANCEL_AFTER >= total:
                break
        await asyncio.sleep(0.1)
    await retrying(lambda: api.post(f"/api/campaigns/{campaigns.cancelled}/cancel"), "the cancel")
    campaigns.cancelled_at = time.monotonic()


async def calendar(db: asyncpg.Pool, campaigns: Campaigns) -> None:
    """The follow-ups' working days pass at once: a released follow-up is due now (as
    tests/integration/test_campaign_sequences.py does), until the task is cancelled."""
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await db.execute(
                "UPDATE campaign.emails SET next_attempt_at = now() - interval '1 second'"
                " WHERE campaign_id = ANY($1::uuid[]) AND step = 1 AND status = 'approved'"
                " AND next_attempt_at > now()",
                [campaigns.main, campaigns.cancelled],
            )
        await asyncio.sleep(0.5)


async def feed_runs(engine: Engine, tag: str, runs: int, seconds: float) -> list[uuid.UUID]:
    """Start `runs` workflow runs evenly over `seconds`, through the engine itself (the same
    transaction and outbox the service uses), each retried with its own run id until it starts:
    PostgreSQL may be restarting. Every tenth waits for an approval nobody gives."""
    run_ids = [uuid.uuid4() for _ in range(runs)]
    pause = seconds / max(runs, 1)
    for number, run_id in enumerate(run_ids):
        waiting = number % WAITING_EVERY == WAITING_EVERY - 1
        kind = "testkit.approval" if waiting else "testkit.three_steps"
        request = StartRequest(kind, {"tag": tag, "delay_seconds": 0.2}, run_id=run_id)
        while True:
            try:
                await engine.start(request)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(0.2)
        await asyncio.sleep(pause)
    return run_ids
