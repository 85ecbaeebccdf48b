"""Sending approved campaign email, with the campaign service running as a process and a real SMTP
server in the test: each approved email arrives once with the one-click unsubscribe headers and a
stable Message-ID; duplicate events, suppressed addresses, hard bounces, temporary failures and a
SIGKILL in the middle of sending never produce a second copy; the run hears `sending_finished`.

The database is shared: every test makes its own job, candidates, campaign and emails, marked
with a fresh tag, and deletes them afterwards. Every test runs its own campaign service (a
service sends every due email it finds, so one configured for another test would interfere).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.messages import make_message_id
from services.campaign.domain.sending import OUTCOME_UNKNOWN
from services.campaign.repository import campaigns, emails
from shared.contracts.campaign import SENDING_FINISHED, EmailApproved
from shared.contracts.workflow import WorkflowSignal
from shared.settings import Settings
from shared.topics import WORKFLOW_SIGNALS
from tests.support.api import wait_for
from tests.support.campaign_rows import Campaign, Email, add_suppression, make_campaign
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Launcher

pytestmark = pytest.mark.integration

SENDER_ENV = {
    "SEND_RATE_PER_SECOND": "0",
    "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
    "SEND_POLL_SECONDS": "0.2",
    "SEND_RETRY_BASE_SECONDS": "0.5",
    "SEND_RETRY_MAX_SECONDS": "1",
    "SMTP_TIMEOUT_SECONDS": "0.5",
    "SEND_STUCK_AFTER_SECONDS": "2",
}


def start_sender(launcher: Launcher, smtp: SmtpTestServer, **env: str) -> Any:
    return launcher.service_within(
        "campaign",
        60,  # after a SIGKILL the group waits for the dead member's session to time out
        {**SENDER_ENV, **smtp.env, **env},
    )


def approved(email: Email) -> EmailApproved:
    """The event review publishes when it approves the email."""
    return EmailApproved(
        campaign_id=email.campaign_id, email_id=email.email_id, approved_by="reviewer"
    )


async def statuses(db: asyncpg.Pool, campaign: Campaign) -> dict[str, asyncpg.Record]:
    rows = await db.fetch(
        "SELECT to_address, status, attempts, last_error, sent_at, message_id"
        " FROM campaign.emails WHERE campaign_id = $1",
        campaign.campaign_id,
    )
    return {row["to_address"]: row for row in rows}


async def signals_for(settings: Settings, run_id: uuid.UUID, timeout: float = 20) -> list[Any]:
    """The workflow signals published for `run_id`, read from the topic's start."""
    consumer = AIOKafkaConsumer(
        WORKFLOW_SIGNALS.name,
        bootstrap_servers=settings.kafka_servers,
        group_id=None,  # no group to join (Tansu takes seconds): every partition, from the start
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    found: list[WorkflowSignal] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not found and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    signal = WorkflowSignal.model_validate_json(record.value or b"")
                    if signal.run_id == run_id:
                        found.append(signal)
        # Read on a little: a second signal would be published right after the first.
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                signal = WorkflowSignal.model_validate_json(record.value or b"")
                if signal.run_id == run_id:
                    found.append(signal)
    finally:
        await consumer.stop()
    return found


async def test_each_approved_email_is_sent_once_and_the_run_hears_sending_finished(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    publish: Callable[[EmailApproved], Awaitable[None]],
) -> None:
    # A slow poll: only the events can wake the sender here, so the last email arriving proves
    # the duplicate events before it (same key, same partition) were handled.
    start_sender(launcher, smtp, SEND_POLL_SECONDS="60")
    recipients = {"ada": "approved", "bruno": "approved", "carla": "approved", "dora": "drafted"}
    campaign = await make_campaign(db, tag, recipients, settings=prepared, status="awaiting_review")
    *approved_first, dora = campaign.emails
    first = {email.address: approved(email) for email in approved_first}
    for event in first.values():
        await publish(event)
    await smtp.wait_for_messages(3)

    links = UnsubscribeLinks.from_settings(prepared)
    rows = await wait_for(
        lambda: _all(statuses(db, campaign), {"sent"}, among=first), what="three sent emails"
    )
    for email in approved_first:
        address, email_id = email.address, email.email_id
        [received] = smtp.messages_to(address)
        message = received.message
        assert received.rcpt_tos == (address,)
        assert message["To"] == address
        assert message["Message-ID"] == rows[address]["message_id"]
        assert message["Message-ID"] == make_message_id(email_id, prepared.sender_email)
        assert message["List-Unsubscribe"] == f"<{links.url(email_id)}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert received.body.count("Unsubscribe with one click") == 1  # the stored footer, once
        assert rows[address]["attempts"] == 1
        assert rows[address]["sent_at"] is not None
    kinds = await db.fetch(
        "SELECT kind, count(*) AS n FROM campaign.delivery_events WHERE campaign_id = $1"
        " GROUP BY kind",
        campaign.campaign_id,
    )
    assert {r["kind"]: r["n"] for r in kinds} == {"sent": 3}

    # Redelivered events (the same ones) and a second approval event change nothing.
    for event in first.values():
        await publish(event)
        await publish(event.model_copy(update={"event_id": uuid.uuid4()}))
    # The last decision: the review helper approves the last draft and moves the campaign on.
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE campaign.emails SET status = 'approved' WHERE email_id = $1", dora.email_id
        )
        await conn.execute(
            "UPDATE campaign.campaigns SET status = 'sending' WHERE campaign_id = $1",
            campaign.campaign_id,
        )
    await publish(approved(dora))
    await smtp.wait_for_messages(4)
    for email in campaign.emails:
        assert len(smtp.messages_to(email.address)) == 1, email.address
    assert len(smtp.messages) == 4

    [signal] = await signals_for(prepared, campaign.campaign_id)
    assert signal.name == SENDING_FINISHED
    assert signal.payload == {"sent": 4, "failed": 0, "bounced": 0}
    assert (
        await db.fetchval(
            "SELECT status FROM campaign.campaigns WHERE campaign_id = $1", campaign.campaign_id
        )
        == "monitoring"
    )


async def _all(
    rows: Awaitable[dict[str, asyncpg.Record]], wanted: set[str], among: Any = None
) -> dict[str, asyncpg.Record] | None:
    got = await rows
    chosen = [row for address, row in got.items() if among is None or address in among]
    return got if chosen and all(row["status"] in wanted for row in chosen) else None


async def test_suppressed_bounced_and_temporarily_refused_addresses(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    publish: Callable[[EmailApproved], Awaitable[None]],
) -> None:
    start_sender(launcher, smtp)
    recipients = dict.fromkeys(["ok", "gone", "busy", "optout"], "approved")
    campaign = await make_campaign(db, tag, recipients, settings=prepared)
    ok, gone, busy, optout = (email.address for email in campaign.emails)
    await add_suppression(db, optout)
    smtp.reject_permanently(gone)
    smtp.reject_temporarily(busy)
    for email in campaign.emails:
        await publish(approved(email))

    async def busy_refused_once() -> bool:
        row = (await statuses(db, campaign))[busy]
        return row["attempts"] >= 1 and (row["last_error"] or "").startswith("451")

    await wait_for(busy_refused_once, what="the 451 to be recorded")
    assert (await statuses(db, campaign))[busy]["status"] in ("approved", "sending")
    smtp.accept(busy)  # the mailbox is free again: the retry gets through
    rows = await wait_for(
        lambda: _all(statuses(db, campaign), {"sent", "failed", "bounced"}),
        what="every email to be decided",
    )

    assert rows[ok]["status"] == "sent"
    assert (rows[busy]["status"], rows[busy]["attempts"]) == ("sent", 2)
    assert len(smtp.messages_to(ok)) == len(smtp.messages_to(busy)) == 1
    assert (rows[gone]["status"], rows[gone]["last_error"]) == (
        "bounced",
        "550 5.1.1 Mailbox unavailable",
    )
    assert (
        await db.fetchval("SELECT reason FROM campaign.suppressions WHERE email = $1", gone)
        == "hard_bounce"
    )
    assert (rows[optout]["status"], rows[optout]["last_error"]) == (
        "failed",
        "suppressed: unsubscribed",
    )
    assert rows[optout]["attempts"] == 0
    assert smtp.messages_to(optout) == []
    assert smtp.messages_to(gone) == []
    events = await db.fetch(
        "SELECT e.to_address, d.kind FROM campaign.delivery_events d"
        " JOIN campaign.emails e USING (email_id) WHERE d.campaign_id = $1",
        campaign.campaign_id,
    )
    assert sorted((r["to_address"], r["kind"]) for r in events) == sorted(
        [(ok, "sent"), (busy, "sent"), (gone, "bounced")]
    )
    [signal] = await signals_for(prepared, campaign.campaign_id)
    assert signal.payload == {"sent": 2, "failed": 1, "bounced": 1}


@pytest.mark.timeout(300)  # a kill and restart waits out consumer sessions
async def test_a_sender_killed_mid_campaign_sends_no_second_copy(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    publish: Callable[[EmailApproved], Awaitable[None]],
) -> None:
    paced = {"CAMPAIGN_SEND_RATE_PER_SECOND": "10"}  # 30 emails take about 3 seconds
    first = start_sender(launcher, smtp, **paced)
    recipients = {f"c{i:02d}": "approved" for i in range(30)}
    campaign = await make_campaign(db, tag, recipients, settings=prepared)
    for email in campaign.emails:
        await publish(approved(email))
    await smtp.wait_for_messages(8, timeout=20)
    first.kill()
    killed_after = len(smtp.messages)
    assert killed_after < 30, "the kill came too late to test anything"

    start_sender(launcher, smtp, **paced)
    rows, unknown = await settled_without_copies(db, campaign, smtp)
    assert len(unknown) <= 1
    assert sum(row["status"] == "sent" for row in rows.values()) >= 29


async def settled_without_copies(
    db: asyncpg.Pool, campaign: Campaign, smtp: SmtpTestServer
) -> tuple[dict[str, asyncpg.Record], list[str]]:
    """Once a restarted sender has sent or failed every email: each sent one arrived exactly
    once, none arrived twice, and every failed one failed as "outcome unknown" (its address
    is in the list returned beside the rows)."""
    rows = await wait_for(
        lambda: _all(statuses(db, campaign), {"sent", "failed"}),
        timeout=40,
        what="every email to be sent or failed",
    )
    unknown = [a for a, row in rows.items() if row["status"] == "failed"]
    assert all(rows[a]["last_error"] == OUTCOME_UNKNOWN for a in unknown), unknown
    for address, row in rows.items():
        copies = len(smtp.messages_to(address))
        assert copies <= 1, f"{address} received {copies} copies"
        if row["status"] == "sent":
            assert copies == 1, address
    return rows, unknown


async def test_a_claim_waits_for_a_cancel_under_way_and_holds_no_email_meanwhile(
    db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    """A cancel locks the campaign, then ends its unsent emails; a claim locks the campaign before
    an email. In the other order a claim held an email while it waited for the campaign, and the
    cancel's update of that email deadlocked with it (seen in CI: a cancel answered 502)."""
    campaign = await make_campaign(
        db, tag, {"ann": "approved", "bob": "approved"}, settings=prepared
    )
    campaign_id = campaign.campaign_id
    async with db.acquire() as cancelling, db.acquire() as claiming:
        async with cancelling.transaction():
            await campaigns.lock_campaign(cancelling, campaign_id)

            async def claim() -> asyncpg.Record | None:
                async with claiming.transaction():
                    return await emails.next_due(claiming, campaign_id)

            claim_task = asyncio.create_task(claim())
            pid = claiming.get_server_pid()
            await wait_for(
                lambda: db.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                ),
                what="the claim to wait for the campaign's lock",
            )
            ended = await asyncio.wait_for(
                emails.end_unsent(cancelling, campaign_id, "cancelled", ["approved"]), 10
            )
            await campaigns.move_campaign(cancelling, campaign_id, "cancelled")
        assert ended == 2
        assert await asyncio.wait_for(claim_task, 10) is None  # it sees the cancel
    assert {row["status"] for row in (await statuses(db, campaign)).values()} == {"cancelled"}


@pytest.mark.parametrize("ending", ["SIGKILL", "SIGTERM"])
async def test_a_sender_stopped_mid_batch_sends_no_second_copy(
    launcher: Launcher,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    publish: Callable[[EmailApproved], Awaitable[None]],
    ending: str,
) -> None:
    """Unpaced, each worker claims and records emails in batches (SEND_BATCH_SIZE). Killed, it
    leaves at most a batch per worker whose outcome is unknown: failed, never sent twice. Stopped,
    it gives back what it has not sent, and nothing is unknown."""
    batch, workers = 5, 2
    with SmtpTestServer(data_delay_seconds=0.02) as slow:
        env = {"SEND_BATCH_SIZE": str(batch), "SMTP_POOL_SIZE": str(workers)}
        first = start_sender(launcher, slow, **env)
        campaign = await make_campaign(
            db, tag, {f"b{i:02d}": "approved" for i in range(40)}, settings=prepared
        )
        for email in campaign.emails:
            await publish(approved(email))
        await slow.wait_for_messages(8, timeout=20)
        if ending == "SIGKILL":
            first.kill()
        else:
            first.stop()
        stopped_after = len(slow.messages)
        assert stopped_after < 40, "the stop came too late to test anything"

        start_sender(launcher, slow, **env)
        rows, unknown = await settled_without_copies(db, campaign, slow)
        assert len(unknown) <= (batch * workers if ending == "SIGKILL" else 0), unknown
        for address, row in rows.items():
            if row["status"] == "sent":
                assert row["attempts"] == 1, address  # a claim given back is no attempt
