"""Sends approved campaign email over SMTP, each email once: the `email.approved` consumer and the
send loop that claims due emails in PostgreSQL, paces them, sends them through the Mailer and
records the outcome, plus the `sending_finished` signal to the campaign's workflow run.

The database is the queue and the event is the doorbell: an `email.approved` event only wakes the
campaign's sending lane, which takes the campaign's next due email itself. So pacing (one email
every 100 seconds is a sensible setting) never holds a Kafka batch, a redelivered event finds
nothing left to take, and an email whose event was lost, or whose retry time has come, is found
by the loop's poll. See docs/email.md, "Sending exactly once".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.campaign.composing import SenderIdentity, UnsubscribeLinks
from services.campaign.mailer import Mailer, SmtpConfig, build_message, make_message_id
from services.campaign.monitoring import TrackingLinks
from services.campaign.pacing import RetryPolicy, SendPacer
from services.campaign.sending import (
    OPEN_STATUSES,
    OUTCOME_UNKNOWN,
    CampaignCounts,
    Decision,
    decide,
    finished_payload,
    outgoing_email,
    sending_finished,
    stuck_after,
    suppressed,
    unbuildable,
)
from shared.campaign_actions import SENDING_FINISHED
from shared.consuming import TRANSIENT_ERRORS, Route
from shared.db import Connection
from shared.events import EmailApproved, EmailDeliveryEvent, WorkflowSignal
from shared.outbox import enqueue
from shared.settings import Settings
from shared.topics import EMAIL_APPROVED, EMAIL_DELIVERY, WORKFLOW_SIGNALS

log = logging.getLogger(__name__)
SCHEMA = "campaign"
RECORD_ATTEMPTS = 5  # an accepted email whose outcome cannot be stored would be swept as unknown
STOP_GRACE_SECONDS = 5.0

# The campaign's next email due to be sent, locked so that two senders never take the same one.
_NEXT_DUE = """
SELECT e.email_id, e.campaign_id, e.to_address, e.subject, e.body, e.message_id, e.attempts,
       j.title AS job_title, c.found_via, s.reason AS suppressed_reason
FROM campaign.emails e
JOIN campaign.campaigns cp USING (campaign_id)
JOIN campaign.jobs j ON j.job_id = e.job_id
JOIN campaign.candidates c ON c.candidate_id = e.candidate_id
LEFT JOIN campaign.suppressions s ON s.email = lower(e.to_address)
WHERE e.campaign_id = $1 AND e.status = 'approved'
  AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= now())
  AND cp.status <> 'cancelled'
ORDER BY coalesce(e.next_attempt_at, e.reviewed_at, e.created_at), e.email_id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""
_DUE_CAMPAIGNS = """
SELECT DISTINCT e.campaign_id FROM campaign.emails e JOIN campaign.campaigns cp USING (campaign_id)
WHERE e.status = 'approved' AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= now())
  AND cp.status <> 'cancelled'
LIMIT 500
"""
_FINISHED_CAMPAIGNS = """
SELECT cp.campaign_id FROM campaign.campaigns cp
WHERE cp.status = 'sending' AND NOT EXISTS (
    SELECT 1 FROM campaign.emails e
    WHERE e.campaign_id = cp.campaign_id AND e.status = ANY($1::text[]))
LIMIT 500
"""
_SWEEP_STUCK = """
UPDATE campaign.emails SET status = 'failed', last_error = $1, next_attempt_at = NULL,
    updated_at = now()
WHERE status = 'sending' AND updated_at < now() - make_interval(secs => $2)
  AND NOT (email_id = ANY($3::uuid[]))
RETURNING email_id
"""


class Sender:
    """One process's sending: a lane per campaign with due email, each running up to
    SMTP_POOL_SIZE workers that pace, claim, send and record one email at a time."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        pacer: SendPacer | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._pacer = pacer or SendPacer.from_settings(settings)
        self._policy = policy or RetryPolicy.from_settings(settings)
        self._identity = SenderIdentity.from_settings(settings)
        self._links = UnsubscribeLinks.from_settings(settings)
        self._tracking = (
            TrackingLinks.from_settings(settings) if settings.track_opens_and_clicks else None
        )
        self._mailer = Mailer(SmtpConfig.from_settings(settings))
        self._workers = settings.smtp_pool_size
        self._stuck_seconds = stuck_after(
            settings.smtp_timeout_seconds, settings.send_stuck_after_seconds
        )
        self._lanes: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()  # woken while its lane was running
        self._in_flight: set[uuid.UUID] = set()  # claimed here, outcome not yet recorded
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ----

    async def start(self) -> None:
        swept = await self.sweep_stuck()
        if swept:
            log.warning(
                "%d email(s) were left mid-send by a stopped sender: %s", swept, OUTCOME_UNKNOWN
            )
        self._loop = asyncio.create_task(self._run(), name="campaign-sender")

    async def stop(self) -> None:
        """Stop taking email; let sends under way record their outcome for a few seconds."""
        self._stopping = True
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        lanes = list(self._lanes.values())
        if lanes:
            _, pending = await asyncio.wait(lanes, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._mailer.aclose()

    def approved(self, campaign_id: uuid.UUID) -> None:
        """An email of the campaign was approved: make sure its lane runs."""
        if not self._stopping:
            self._ensure_lane(campaign_id)

    # ---- the loop: retries, lost events, stuck sends, finished campaigns ----

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # keep sending after a database hiccup
                log.exception("the campaign sender's poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.send_poll_seconds)

    async def tick(self) -> None:
        await self.sweep_stuck()
        async with self._pool.acquire() as conn:
            due = [r["campaign_id"] for r in await conn.fetch(_DUE_CAMPAIGNS)]
            # A campaign can finish without a send to trigger it: the last decision was a
            # rejection after every approved email had gone, or a stuck send was swept.
            finished = await conn.fetch(_FINISHED_CAMPAIGNS, list(OPEN_STATUSES))
            for row in finished:
                async with conn.transaction():
                    await finish_if_done(conn, row["campaign_id"])
        for campaign_id in due:
            self._ensure_lane(campaign_id)

    async def sweep_stuck(self) -> int:
        """Fail emails left 'sending' by a stopped process, never one this process is sending."""
        rows = await self._pool.fetch(
            _SWEEP_STUCK, OUTCOME_UNKNOWN, self._stuck_seconds, list(self._in_flight)
        )
        return len(rows)

    # ---- lanes ----

    def _ensure_lane(self, campaign_id: uuid.UUID) -> None:
        lane = self._lanes.get(campaign_id)
        if lane is not None and not lane.done():
            self._again.add(campaign_id)
            return
        task = asyncio.create_task(self._lane(campaign_id), name=f"send-{campaign_id}")
        self._lanes[campaign_id] = task

    async def _lane(self, campaign_id: uuid.UUID) -> None:
        try:
            while not self._stopping:
                self._again.discard(campaign_id)
                await asyncio.gather(*(self._worker(campaign_id) for _ in range(self._workers)))
                if campaign_id not in self._again:
                    return  # no await between this check and the removal below: no lost wake
        except Exception:
            log.exception("sending campaign %s failed; the poll will resume it", campaign_id)
        finally:
            self._lanes.pop(campaign_id, None)

    async def _worker(self, campaign_id: uuid.UUID) -> None:
        while not self._stopping:
            # Paced before the claim: an email waits its turn as 'approved', so a crash while
            # waiting leaves nothing in doubt; 'sending' lasts only the SMTP exchange.
            await self._pacer.acquire(campaign_id)
            if self._stopping or not await self.send_next(campaign_id):
                return

    # ---- one email ----

    async def send_next(self, campaign_id: uuid.UUID) -> bool:
        """Claim, send and record the campaign's next due email; False when none is due."""
        row = await self._claim(campaign_id)
        if row is None:
            return False
        email_id: uuid.UUID = row["email_id"]
        self._in_flight.add(email_id)
        try:
            try:
                message = build_message(
                    outgoing_email(row), self._identity, self._links, tracking=self._tracking
                )
            except ValueError as exc:
                decision = unbuildable(str(exc))
            else:
                outcome = await self._mailer.send(message)
                decision = decide(outcome, row["attempts"], self._policy)
            await self._record(email_id, campaign_id, row["to_address"], decision)
        finally:
            self._in_flight.discard(email_id)
        return True

    async def _claim(self, campaign_id: uuid.UUID) -> dict[str, Any] | None:
        """Step 1, one transaction: take the next due email and mark it 'sending' (a redelivered
        event or another sender finds it taken); a suppressed address fails without a send."""
        async with self._pool.acquire() as conn:
            while True:
                async with conn.transaction():
                    row = await conn.fetchrow(_NEXT_DUE, campaign_id)
                    if row is None:
                        return None
                    if row["suppressed_reason"] is not None:
                        await _store(conn, row["email_id"], suppressed(row["suppressed_reason"]))
                        await finish_if_done(conn, campaign_id)
                        continue
                    claimed = await conn.fetchrow(
                        "UPDATE campaign.emails SET status = 'sending', attempts = attempts + 1,"
                        " message_id = coalesce(message_id, $2), last_error = NULL,"
                        " updated_at = now() WHERE email_id = $1"
                        " RETURNING attempts, message_id",
                        row["email_id"],
                        make_message_id(row["email_id"], self._identity.email),
                    )
                    assert claimed is not None  # the row is locked by this transaction
                    return {**dict(row), **dict(claimed)}

    async def _record(
        self, email_id: uuid.UUID, campaign_id: uuid.UUID, address: str, decision: Decision
    ) -> None:
        """Step 3, one transaction: the outcome, its delivery event and suppression, and the
        campaign's end of sending. Retried: a send accepted but not recorded is 'unknown'."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    if await _store(conn, email_id, decision, from_sending=True):
                        await _effects(conn, email_id, campaign_id, address, decision)
                        if not await _others_open(conn, campaign_id, email_id):
                            await finish_if_done(conn, campaign_id)
            except TRANSIENT_ERRORS:
                if attempt == RECORD_ATTEMPTS:
                    log.exception("could not record the outcome of email %s", email_id)
                    raise
                await asyncio.sleep(attempt)
            else:
                return


async def _store(
    conn: Connection, email_id: uuid.UUID, decision: Decision, *, from_sending: bool = False
) -> bool:
    """Write the decision on the email row. After a send, only a 'sending' row (or one a sweep
    has just failed as unknown: the real outcome is better) is changed; False if none was."""
    now = datetime.now(UTC)
    result: str = await conn.execute(
        "UPDATE campaign.emails SET status = $2, last_error = $3, next_attempt_at = $4,"
        " sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END, updated_at = now()"
        " WHERE email_id = $1 AND CASE WHEN $6"
        "  THEN status = 'sending' OR (status = 'failed' AND last_error = $7)"
        "  ELSE status = 'approved' END",
        email_id, decision.status, decision.last_error, decision.next_attempt_at(now), now,
        from_sending, OUTCOME_UNKNOWN,
    )  # fmt: skip
    return result.endswith(" 1")


async def _effects(
    conn: Connection, email_id: uuid.UUID, campaign_id: uuid.UUID, address: str, decision: Decision
) -> None:
    if decision.suppress is not None:
        await conn.execute(
            "INSERT INTO campaign.suppressions (email, reason, campaign_id, detail)"
            " VALUES (lower($1), $2, $3, $4) ON CONFLICT (email) DO NOTHING",
            address, decision.suppress, campaign_id, decision.last_error,
        )  # fmt: skip
    if decision.delivery_kind is not None:
        event = EmailDeliveryEvent(
            campaign_id=campaign_id,
            email_id=email_id,
            kind=decision.delivery_kind,
            detail=dict(decision.detail or {}),
        )
        await conn.execute(
            "INSERT INTO campaign.delivery_events (event_id, email_id, campaign_id, kind, detail,"
            " occurred_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            event.event_id, email_id, campaign_id, event.kind, json.dumps(event.detail),
            event.occurred_at,
        )  # fmt: skip
        await enqueue(conn, SCHEMA, EMAIL_DELIVERY.name, str(campaign_id), event)


async def _others_open(conn: Connection, campaign_id: uuid.UUID, email_id: uuid.UUID) -> bool:
    """Another email of the campaign is still to be sent: then this one was not the last, and the
    campaign row need not be locked (concurrent senders would queue on that lock). Two last
    emails recorded at once may each see the other open; the loop's poll finishes the campaign."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign.emails WHERE campaign_id = $1"
        " AND status = ANY($2::text[]) AND email_id <> $3)",
        campaign_id, list(OPEN_STATUSES), email_id,
    )  # fmt: skip
    return found


async def finish_if_done(conn: Connection, campaign_id: uuid.UUID) -> bool:
    """Inside the caller's transaction: when the review is over and nothing is left to send, move
    the campaign to 'monitoring' and signal its run, once (the campaign row is locked)."""
    campaign = await conn.fetchrow(
        "SELECT status, correlation_id FROM campaign.campaigns WHERE campaign_id = $1 FOR UPDATE",
        campaign_id,
    )
    if campaign is None or campaign["status"] != "sending":
        return False
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = ANY($2::text[])) AS open,"
        " count(*) FILTER (WHERE status = 'sent') AS sent,"
        " count(*) FILTER (WHERE status = 'failed') AS failed,"
        " count(*) FILTER (WHERE status = 'bounced') AS bounced"
        " FROM campaign.emails WHERE campaign_id = $1",
        campaign_id,
        list(OPEN_STATUSES),
    )
    assert row is not None
    counts = CampaignCounts(**dict(row))
    if not sending_finished(campaign["status"], counts):
        return False
    await conn.execute(
        "UPDATE campaign.campaigns SET status = 'monitoring', updated_at = now()"
        " WHERE campaign_id = $1",
        campaign_id,
    )
    extra = {"correlation_id": campaign["correlation_id"]} if campaign["correlation_id"] else {}
    signal = WorkflowSignal(
        run_id=campaign_id,
        name=SENDING_FINISHED,
        payload=finished_payload(counts),
        sent_by="campaign.sender",
        **extra,
    )
    await enqueue(conn, SCHEMA, WORKFLOW_SIGNALS.name, str(campaign_id), signal)
    log.info("campaign %s finished sending: %s", campaign_id, signal.payload)
    return True


def approved_routes(sender: Callable[[], Sender]) -> dict[str, Route[Any]]:
    """The consumer route of `email.approved`: each event wakes its campaign's lane (see the
    module docstring). `sender` returns the Sender made in the startup hook."""

    async def on_approved(event: EmailApproved) -> None:
        sender().approved(event.campaign_id)

    return {EMAIL_APPROVED.name: Route(EmailApproved, on_approved, key=lambda e: e.campaign_id)}
