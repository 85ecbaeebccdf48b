"""Pacing that holds across processes, against the real PostgreSQL and Redis and a real SMTP
server: a sender identity's daily cap spreads a campaign over days, two senders sharing Redis
never together pass it, a recipient in Tokyo is written to in Tokyo's office hours, a candidate
another campaign wrote to within the contact-frequency cap is not written to again (nor
extracted), and the campaign view says when the next email goes and why it waits.

The Sender is called directly (`drain`) with a fake clock whose sleep moves the clock, so days
pass in milliseconds. Each test has its own Redis namespace, so its marks and counters are its own.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio as redis

from services.campaign.domain.windows import SendingWindow
from services.campaign.repository import candidates
from services.campaign.repository.delivery import MonitoringRepository
from services.campaign.send_policy import WINDOW_WAIT
from services.campaign.sender import Sender
from services.campaign.throttle import RedisThrottle
from shared.contracts.campaign import NextSend
from shared.contracts.intent import Slots
from shared.settings import Settings
from tests.support.api import MakeKey, wait_for
from tests.support.campaign_rows import (
    Campaign,
    add_campaign,
    add_candidate,
    add_email,
    add_job,
    make_campaign,
)
from tests.support.smtp import Received, SmtpTestServer
from tests.support.stack import Launcher

pytestmark = pytest.mark.integration

TOKYO = ZoneInfo("Asia/Tokyo")
MONDAY_10_UTC = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


class FakeClock:
    """The senders' time: it moves only when a sender sleeps (to where the sleep ends)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def shared_redis(prepared: Settings) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(prepared.redis_url)
    yield client
    await client.aclose()


def pacing_settings(prepared: Settings, smtp: SmtpTestServer, **fields: Any) -> Settings:
    """The test stack's settings sending to `smtp`, with no pacing unless `fields` set some."""
    base: dict[str, Any] = {
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_pool_size": 1,
        "send_rate_per_second": 0,
        "campaign_send_rate_per_second": 0,
        "send_window_days": "always",
        "send_daily_cap": 0,
        "send_spacing_seconds": 0,
        "send_spacing_jitter_seconds": 0,
        "send_contact_frequency_days": 0,
        "sender_timezone": "UTC",
    }
    return Settings(**{**prepared.model_dump(), **base, **fields})


def make_sender(
    settings: Settings, pool: asyncpg.Pool, client: redis.Redis, namespace: str, clock: FakeClock
) -> Sender:
    throttle = RedisThrottle(
        client, rate_per_second=settings.send_rate_per_second, namespace=namespace
    )
    return Sender(pool, settings, throttle=throttle, clock=clock.clock, sleep=clock.sleep)


def sent_at(received: Received) -> datetime:
    """When the sender sent it: the Date header, written from the sender's clock."""
    return parsedate_to_datetime(str(received.message["Date"])).astimezone(UTC)


async def email_rows(db: asyncpg.Pool, campaign: Campaign) -> dict[str, asyncpg.Record]:
    rows = await db.fetch(
        "SELECT to_address, status, attempts, last_error, next_attempt_at FROM campaign.emails"
        " WHERE campaign_id = $1",
        campaign.campaign_id,
    )
    return {row["to_address"]: row for row in rows}


async def test_a_daily_cap_of_three_spreads_seven_emails_over_three_days(
    prepared: Settings, smtp: SmtpTestServer, db: asyncpg.Pool, shared_redis: redis.Redis, tag: str
) -> None:
    settings = pacing_settings(prepared, smtp, send_daily_cap=3, send_spacing_seconds=600)
    clock = FakeClock(MONDAY_10_UTC)
    campaign = await make_campaign(
        db, tag, {f"p{i}": "approved" for i in range(7)}, settings=prepared
    )
    sender = make_sender(settings, db, shared_redis, f"test:{uuid.uuid4()}", clock)
    try:
        await sender.drain(campaign.campaign_id)
    finally:
        await sender.stop()

    times = sorted(sent_at(received) for received in smtp.messages)
    assert Counter(t.date() for t in times) == {
        date(2026, 12, 7): 3,
        date(2026, 12, 8): 3,
        date(2026, 12, 9): 1,
    }
    assert times[0] == MONDAY_10_UTC
    assert times[3] == datetime(2026, 12, 8, tzinfo=UTC)  # the cap's new day, at midnight UTC
    same_day = [(a, b) for a, b in itertools.pairwise(times) if a.date() == b.date()]
    assert all(b - a >= timedelta(seconds=600) for a, b in same_day)  # the spacing held too
    rows = await email_rows(db, campaign)
    assert {row["status"] for row in rows.values()} == {"sent"}
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted(rows)  # each once


async def test_two_senders_sharing_redis_never_together_pass_the_cap(
    prepared: Settings, smtp: SmtpTestServer, shared_redis: redis.Redis, tag: str
) -> None:
    # Two senders (as two processes would: each its own pool and workers) on one campaign; the
    # only thing they share is Redis. Three workers each race for every slot.
    settings = pacing_settings(prepared, smtp, send_daily_cap=3, smtp_pool_size=3)
    clock = FakeClock(MONDAY_10_UTC)
    namespace = f"test:{uuid.uuid4()}"
    pools = [await asyncpg.create_pool(prepared.database_url, min_size=1, max_size=4) for _ in "ab"]
    try:
        campaign = await make_campaign(
            pools[0], tag, {f"r{i}": "approved" for i in range(10)}, settings=prepared
        )
        senders = [make_sender(settings, pool, shared_redis, namespace, clock) for pool in pools]
        try:
            await asyncio.gather(*(s.drain(campaign.campaign_id) for s in senders))
        finally:
            for sender in senders:
                await sender.stop()
    finally:
        for pool in pools:
            await pool.close()

    per_day = Counter(sent_at(received).date() for received in smtp.messages)
    assert sorted(per_day.values()) == [1, 3, 3, 3]  # never a fourth on any day
    assert len({r.rcpt_tos[0] for r in smtp.messages}) == 10  # every email, once


async def test_a_candidate_in_tokyo_is_not_emailed_at_three_but_at_nine_tokyo_time(
    prepared: Settings, smtp: SmtpTestServer, db: asyncpg.Pool, tag: str
) -> None:
    settings = pacing_settings(prepared, smtp, send_window_days="mon-fri", sender_timezone="UTC")
    campaign = await make_campaign(
        db, tag, {"kenji": "approved", "yui": "approved"}, settings=prepared
    )
    kenji, yui = campaign.emails
    await _set_candidate(db, kenji.address, timezone="Asia/Tokyo", city="Berlin")
    await _set_candidate(db, yui.address, timezone=None, city="Tokyo")  # the city's zone
    three_am = datetime(2026, 12, 2, 3, 0, tzinfo=TOKYO)  # a Wednesday; 18:00 UTC, Tuesday
    nine_am = datetime(2026, 12, 2, 9, 0, tzinfo=TOKYO)
    clock = FakeClock(three_am)
    sender = Sender(db, settings, clock=clock.clock, sleep=clock.sleep)
    try:
        await sender.drain(campaign.campaign_id)
        assert smtp.messages == []
        rows = await email_rows(db, campaign)
        for email in (kenji, yui):
            row = rows[email.address]
            assert (row["status"], row["attempts"]) == ("approved", 0)  # put off, not tried
            assert row["next_attempt_at"] == nine_am
            assert row["last_error"].startswith(WINDOW_WAIT)
        async with db.acquire() as conn:
            view = await MonitoringRepository(conn, sender.pacing.next_send).campaign(
                campaign.campaign_id
            )
        assert view is not None
        assert view.next_send == NextSend(at=nine_am, waiting_for="window")

        clock.now = nine_am - timedelta(seconds=1)
        await sender.drain(campaign.campaign_id)
        assert smtp.messages == []  # not due yet

        clock.now = nine_am
        await sender.drain(campaign.campaign_id)
    finally:
        await sender.stop()
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted([kenji.address, yui.address])
    assert {sent_at(r) for r in smtp.messages} == {nine_am}
    assert {row["status"] for row in (await email_rows(db, campaign)).values()} == {"sent"}


async def test_one_outreach_per_candidate_per_thirty_days_whatever_the_job(
    prepared: Settings, smtp: SmtpTestServer, db: asyncpg.Pool, tag: str
) -> None:
    settings = pacing_settings(prepared, smtp, send_contact_frequency_days=30)
    now = datetime.now(UTC)
    # Campaign A, about another job: its first email to Xavier went 10 days ago; its first email
    # to Yara 40 days ago and its follow-up (step 1) 5 days ago, which does not count.
    earlier = await make_campaign(db, tag, {"xavier": "sent", "yara": "sent"}, settings=prepared)
    xavier, yara = earlier.emails
    await _sent_days_ago(db, xavier.email_id, 10, now)
    await _sent_days_ago(db, yara.email_id, 40, now)
    await db.execute(
        "INSERT INTO campaign.emails (email_id, campaign_id, job_id, candidate_id, to_address,"
        " subject, body, status, step, sent_at)"
        " SELECT gen_random_uuid(), campaign_id, job_id, candidate_id, to_address, 'Re: hi',"
        "  'Following up', 'sent', 1, $2 FROM campaign.emails WHERE email_id = $1",
        yara.email_id,
        now - timedelta(days=5),
    )
    # Campaign B, about a new job, writes to both.
    job_b = await add_job(db, f"Data Engineer {tag}", skills=[f"sql-{tag}"])
    campaign_b = await add_campaign(
        db, job_b, name=f"Data Engineer {tag} outreach", status="sending"
    )
    ids = {}
    for old in (xavier, yara):
        candidate_id = await db.fetchval(
            "SELECT candidate_id FROM campaign.emails WHERE email_id = $1", old.email_id
        )
        ids[old.address] = candidate_id
        await add_email(
            db, campaign_b, job_b, candidate_id, to_address=old.address, status="approved"
        )

    clock = FakeClock(now)
    sender = Sender(db, settings, clock=clock.clock, sleep=clock.sleep)
    try:
        await sender.drain(campaign_b)
    finally:
        await sender.stop()

    assert [r.rcpt_tos[0] for r in smtp.messages] == [yara.address]
    rows = {
        row["to_address"]: row
        for row in await db.fetch(
            "SELECT to_address, status, last_error, attempts FROM campaign.emails"
            " WHERE campaign_id = $1",
            campaign_b,
        )
    }
    assert rows[yara.address]["status"] == "sent"
    refused = rows[xavier.address]
    assert (refused["status"], refused["attempts"]) == ("failed", 0)
    name = await db.fetchval(
        "SELECT name FROM campaign.campaigns WHERE campaign_id = $1", earlier.campaign_id
    )
    assert refused["last_error"] == f"contacted within 30 days by campaign {name}"

    # Extraction for a third job: under the cap, Xavier and Yara (whose first email from
    # campaign B has just gone) are left out, and Zoe, never written to, is found.
    zoe = await add_candidate(
        db, "Zoe Test", email=f"zoe-{tag}@example.com", skills=[earlier.skill]
    )
    job_c = await add_job(db, f"Analytics Engineer {tag}", skills=[earlier.skill])
    campaign_c = await add_campaign(db, job_c, name=f"c {tag}")
    slots = Slots(skills=[earlier.skill])
    async with db.acquire() as conn:
        capped = await candidates.extract_candidates(
            conn, slots, job_c, campaign_c, window_days=90, limit=10, frequency_days=30
        )
        uncapped = await candidates.extract_candidates(
            conn, slots, job_c, campaign_c, window_days=90, limit=10
        )
    assert {m.candidate_id for m in capped} == {zoe}
    assert {m.candidate_id for m in uncapped} == {zoe, *ids.values()}


async def test_the_campaign_view_says_when_the_next_email_goes_and_why_it_waits(
    prepared: Settings, smtp: SmtpTestServer, db: asyncpg.Pool, shared_redis: redis.Redis, tag: str
) -> None:
    settings = pacing_settings(
        prepared, smtp, send_daily_cap=2, send_spacing_seconds=300, send_window_days="mon-fri"
    )
    clock = FakeClock(MONDAY_10_UTC)
    sender = make_sender(settings, db, shared_redis, f"test:{uuid.uuid4()}", clock)
    campaign = await make_campaign(db, tag, {"ada": "approved", "bo": "drafted"}, settings=prepared)
    ada, bo = campaign.emails
    pacing = sender.pacing
    box = pacing.mailboxes.default

    async def next_send() -> NextSend:
        async with db.acquire() as conn:
            view = await MonitoringRepository(conn, pacing.next_send).campaign(campaign.campaign_id)
        assert view is not None
        return view.next_send

    try:
        assert await next_send() == NextSend(at=MONDAY_10_UTC)  # it would go now
        assert (await pacing.reserve(box, clock.now)).granted  # another email of the sender's
        assert await next_send() == NextSend(
            at=MONDAY_10_UTC + timedelta(seconds=300), waiting_for="spacing"
        )
        clock.now += timedelta(seconds=300)
        assert (await pacing.reserve(box, clock.now)).granted
        assert await next_send() == NextSend(
            at=datetime(2026, 12, 8, tzinfo=UTC), waiting_for="daily_cap"
        )
        clock.now = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)  # a new day; 02:00 in Berlin
        assert await next_send() == NextSend(
            at=SendingWindow().next_open(clock.now, ZoneInfo("Europe/Berlin")),
            waiting_for="window",
        )
        clock.now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
        retry_at = clock.now + timedelta(minutes=5)
        await db.execute(
            "UPDATE campaign.emails SET next_attempt_at = $2, last_error = '451 busy'"
            " WHERE email_id = $1",
            ada.email_id,
            retry_at,
        )
        assert await next_send() == NextSend(at=retry_at, waiting_for="retry")
        await db.execute(
            "UPDATE campaign.campaigns SET paused_at = now(), paused_by = 'ops'"
            " WHERE campaign_id = $1",
            campaign.campaign_id,
        )
        assert await next_send() == NextSend(waiting_for="paused")
        await db.execute(
            "UPDATE campaign.emails SET status = 'sent' WHERE email_id = $1", ada.email_id
        )
        assert await next_send() == NextSend()  # nothing left to send (bo is still a draft)
    finally:
        await sender.stop()
    assert bo.status == "drafted"


async def _set_candidate(
    db: asyncpg.Pool, address: str, *, timezone: str | None, city: str | None
) -> None:
    await db.execute(
        "UPDATE campaign.candidates SET timezone = $2, city = $3 WHERE email = $1",
        address,
        timezone,
        city,
    )


async def _sent_days_ago(db: asyncpg.Pool, email_id: uuid.UUID, days: int, now: datetime) -> None:
    await db.execute(
        "UPDATE campaign.emails SET sent_at = $2 WHERE email_id = $1",
        email_id,
        now - timedelta(days=days),
    )


async def test_two_campaign_service_processes_never_together_pass_the_cap(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    shared_redis: redis.Redis,
    make_key: MakeKey,
    tag: str,
) -> None:
    # Real processes on the real clock: three workers each race for a cap of 3 a day. The
    # sender's address is the test's own, so its Redis counters are too.
    sender_email = f"pacing-{tag}@example.com"
    env = {
        **smtp.env,
        "SENDER_EMAIL": sender_email,
        "SEND_DAILY_CAP": "3",
        "SMTP_POOL_SIZE": "3",
        "SEND_RATE_PER_SECOND": "0",
        "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
        "SEND_POLL_SECONDS": "0.2",
    }
    processes = [launcher.service_within("campaign", 60, env) for _ in "ab"]
    gateway = launcher.gateway()
    campaign = await make_campaign(
        db, tag, {f"s{i}": "approved" for i in range(8)}, settings=prepared
    )
    await smtp.wait_for_messages(3)
    for process in processes:  # each has tried for a fourth slot and been told to wait
        await asyncio.to_thread(process.wait_for, f"{sender_email} waits for daily_cap", 30)

    async def three_recorded() -> Counter[str] | None:
        # The SMTP server has them before the senders record them (a moment later).
        counts = Counter(row["status"] for row in (await email_rows(db, campaign)).values())
        return counts if counts["sent"] == 3 else None

    counts = await wait_for(three_recorded, timeout=10, what="three emails recorded as sent")
    assert counts == {"sent": 3, "approved": 5}
    today = datetime.now(UTC).date().isoformat()
    counted = await shared_redis.get(f"campaign:pace:sender:{sender_email}:day:{today}")
    assert counted == b"3"
    assert len(smtp.messages) == 3
    async with gateway.client(await make_key("review", user="reviewer")) as api:
        response = await api.get(f"/api/campaigns/{campaign.campaign_id}")
    assert response.status_code == 200, response.text
    tomorrow = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(), UTC)
    assert response.json()["next_send"] == {
        "at": tomorrow.isoformat().replace("+00:00", "Z"),
        "waiting_for": "daily_cap",
    }
