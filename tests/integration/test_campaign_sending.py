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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.campaign.domain.composing import Draft, FooterContext, SenderIdentity, finalise
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.messages import make_message_id
from services.campaign.domain.sending import OUTCOME_UNKNOWN
from shared.campaign_actions import SENDING_FINISHED
from shared.events import EmailApproved, WorkflowSignal
from shared.settings import Settings
from shared.topics import EMAIL_APPROVED, WORKFLOW_SIGNALS
from tests.conftest import Launcher
from tests.support.api import wait_for
from tests.support.smtp import SmtpTestServer

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


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
async def publish(prepared: Settings) -> AsyncIterator[Callable[[EmailApproved], Awaitable[None]]]:
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_servers)
    await producer.start()

    async def send(event: EmailApproved) -> None:
        await producer.send_and_wait(
            EMAIL_APPROVED.name,
            value=event.model_dump_json().encode(),
            key=str(event.campaign_id).encode(),
        )

    yield send
    await producer.stop()


def start_sender(launcher: Launcher, smtp: SmtpTestServer, **env: str) -> Any:
    return launcher.service_within(
        "campaign",
        60,  # after a SIGKILL the group waits for the dead member's session to time out
        {**SENDER_ENV, "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), **env},
    )


class Campaign:
    def __init__(self, campaign_id: uuid.UUID, emails: dict[str, uuid.UUID]) -> None:
        self.campaign_id = campaign_id
        self.emails = emails  # address -> email id

    def approved(self, address: str) -> EmailApproved:
        return EmailApproved(
            campaign_id=self.campaign_id, email_id=self.emails[address], approved_by="reviewer"
        )


async def make_campaign(
    db: asyncpg.Pool,
    settings: Settings,
    tag: str,
    names: list[str],
    *,
    status: str = "sending",
    drafted: tuple[str, ...] = (),
) -> Campaign:
    """A job, one candidate per name, a campaign and an approved email each (or drafted, for the
    names in `drafted`), written as the drafting step writes them (footer included)."""
    sender = SenderIdentity.from_settings(settings)
    links = UnsubscribeLinks.from_settings(settings)
    title = f"Sender Test Engineer {tag}"
    campaign_id = uuid.uuid4()
    emails: dict[str, uuid.UUID] = {}
    async with db.acquire() as conn, conn.transaction():
        job_id = await conn.fetchval(
            "INSERT INTO campaign.jobs (title) VALUES ($1) RETURNING job_id", title
        )
        await conn.execute(
            "INSERT INTO campaign.campaigns (campaign_id, job_id, name, status)"
            " VALUES ($1, $2, $3, $4)",
            campaign_id, job_id, f"{title} outreach", status,
        )  # fmt: skip
        for name in names:
            address = f"{name}-{tag}@example.com"
            candidate_id = await conn.fetchval(
                "INSERT INTO campaign.candidates (full_name, first_name, email, source, found_via)"
                " VALUES ($1, $1, $2, 'test', 'GitHub') RETURNING candidate_id",
                name.title(), address,
            )  # fmt: skip
            email_id = uuid.uuid4()
            footer = FooterContext(sender, title, "GitHub", links.url(email_id))
            draft = finalise(
                Draft(f"{title} at Acme", f"Hi {name.title()},\n\nInterested?"), footer
            )
            await conn.execute(
                "INSERT INTO campaign.emails (email_id, campaign_id, job_id, candidate_id,"
                " to_address, subject, body, status, message_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                email_id, campaign_id, job_id, candidate_id, address, draft.subject, draft.body,
                "drafted" if name in drafted else "approved",
                make_message_id(email_id, sender.email),
            )  # fmt: skip
            emails[address] = email_id
    return Campaign(campaign_id, emails)


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
    campaign = await make_campaign(
        db, prepared, tag, ["ada", "bruno", "carla", "dora"], status="awaiting_review",
        drafted=("dora",),
    )  # fmt: skip
    first = {a: campaign.approved(a) for a in campaign.emails if not a.startswith("dora")}
    for event in first.values():
        await publish(event)
    await smtp.wait_for_messages(3)

    links = UnsubscribeLinks.from_settings(prepared)
    rows = await wait_for(
        lambda: _all(statuses(db, campaign), {"sent"}, among=first), what="three sent emails"
    )
    for address, email_id in ((a, campaign.emails[a]) for a in first):
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
    dora = next(a for a in campaign.emails if a.startswith("dora"))
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE campaign.emails SET status = 'approved' WHERE email_id = $1",
            campaign.emails[dora],
        )
        await conn.execute(
            "UPDATE campaign.campaigns SET status = 'sending' WHERE campaign_id = $1",
            campaign.campaign_id,
        )
    await publish(campaign.approved(dora))
    await smtp.wait_for_messages(4)
    for address in campaign.emails:
        assert len(smtp.messages_to(address)) == 1, address
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
    campaign = await make_campaign(db, prepared, tag, ["ok", "gone", "busy", "optout"])
    ok, gone, busy, optout = campaign.emails
    await db.execute(
        "INSERT INTO campaign.suppressions (email, reason) VALUES ($1, 'unsubscribed')", optout
    )
    smtp.reject_permanently(gone)
    smtp.reject_temporarily(busy)
    for address in campaign.emails:
        await publish(campaign.approved(address))

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
    campaign = await make_campaign(db, prepared, tag, [f"c{i:02d}" for i in range(30)])
    for address in campaign.emails:
        await publish(campaign.approved(address))
    await smtp.wait_for_messages(8, timeout=20)
    first.kill()
    killed_after = len(smtp.messages)
    assert killed_after < 30, "the kill came too late to test anything"

    start_sender(launcher, smtp, **paced)
    rows = await wait_for(
        lambda: _all(statuses(db, campaign), {"sent", "failed"}),
        timeout=40,
        what="every email to be sent or failed",
    )
    unknown = [a for a, row in rows.items() if row["status"] == "failed"]
    assert all(rows[a]["last_error"] == OUTCOME_UNKNOWN for a in unknown), unknown
    assert len(unknown) <= 1
    for address, row in rows.items():
        copies = len(smtp.messages_to(address))
        assert copies <= 1, f"{address} received {copies} copies"
        if row["status"] == "sent":
            assert copies == 1, address
    assert sum(row["status"] == "sent" for row in rows.values()) >= 29
