"""Sends approved campaign email over SMTP, each email once: the `email.approved` consumer and the
send loop that claims due emails in PostgreSQL, paces them, sends them through the Mailer and
records the outcome, plus the `sending_finished` signal to the campaign's workflow run.

Pacing (docs/email.md, "Pacing"): before a claim a worker reserves a slot of its campaign's
sender identity in Redis (daily cap, spacing, global rate: shared by every process) and waits
for it; at the claim, an email whose recipient is outside their sending window is put off to the
window's next opening, and a first email to someone another campaign wrote to within
SEND_CONTACT_FREQUENCY_DAYS fails unsent. Time comes from an injectable clock and sleep.

The database is the queue and the event is the doorbell: an `email.approved` event only wakes the
campaign's sending lane, which takes the campaign's next due email itself. So pacing (one email
every 100 seconds is a sensible setting) never holds a Kafka batch, a redelivered event finds
nothing left to take, and an email whose event was lost, or whose retry time has come, is found
by the loop's poll. See docs/email.md, "Sending exactly once".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link

from services.campaign.domain.links import TrackingLinks, UnsubscribeLinks
from services.campaign.domain.messages import build_message, make_message_id
from services.campaign.domain.monitoring import dedupe_id
from services.campaign.domain.pacing import (
    RateLimiter,
    Reservation,
    RetryPolicy,
    Sleep,
    WallClock,
    utc_now,
    wait_seconds,
)
from services.campaign.domain.sending import (
    OUTCOME_UNKNOWN,
    SendDecision,
    decide,
    finished_payload,
    outgoing_email,
    sending_finished,
    stuck_after,
    suppressed,
    unbuildable,
)
from services.campaign.mailer import Mailbox, Mailer
from services.campaign.repository import SCHEMA, campaigns, emails, sequences
from services.campaign.repository.delivery import EmailRef, MonitoringRepository
from services.campaign.send_policy import Pacing
from shared.consuming import TRANSIENT_ERRORS, Route
from shared.contracts.campaign import SENDING_FINISHED, EmailApproved
from shared.contracts.workflow import WorkflowSignal
from shared.db import Connection
from shared.errors import Refused
from shared.metrics import EMAIL_SEND_DURATION, EMAIL_SENDS, Children
from shared.outbox import enqueue
from shared.settings import Settings
from shared.telemetry import ORIGINS
from shared.topics import EMAIL_APPROVED, WORKFLOW_SIGNALS

if TYPE_CHECKING:
    from services.campaign.throttle import RedisThrottle

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
# by outcome: sent, bounced, failed, retry, suppressed, unbuildable, deferred, contact_capped
_sends = Children(EMAIL_SENDS)
RECORD_ATTEMPTS = 5  # an accepted email whose outcome cannot be stored would be swept as unknown
STOP_GRACE_SECONDS = 5.0


class Sender:
    """One process's sending: a lane per campaign with due email, each running up to
    SMTP_POOL_SIZE workers that pace, claim, send and record one email at a time."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        throttle: RedisThrottle | None = None,
        pacing: Pacing | None = None,
        policy: RetryPolicy | None = None,
        clock: WallClock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.pacing = pacing or Pacing(settings, throttle, clock=clock)
        # Per process, on the same clock; the limits shared by processes are in `pacing`.
        self._campaign_limit = RateLimiter(
            settings.campaign_send_rate_per_second,
            clock=lambda: self._clock().timestamp(),
            sleep=sleep,
        )
        self._policy = policy or RetryPolicy.from_settings(settings)
        self._links = UnsubscribeLinks.from_settings(settings)
        self._tracking = (
            TrackingLinks.from_settings(settings) if settings.track_opens_and_clicks else None
        )
        self._mailers: dict[str, Mailer] = {}  # by identity address: each its own SMTP login
        self._workers = settings.smtp_pool_size
        self._batch = settings.send_batch_size
        self._stuck_seconds = stuck_after(
            settings.smtp_timeout_seconds, settings.send_stuck_after_seconds
        )
        self._lanes: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()  # woken while its lane was running
        self._in_flight: set[uuid.UUID] = set()  # claimed here, outcome not yet recorded
        # the trace of each campaign's latest approval, for the send spans' links
        self._approvals: dict[uuid.UUID, trace.SpanContext] = {}
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
        for mailer in self._mailers.values():
            await mailer.aclose()

    def approved(self, campaign_id: uuid.UUID) -> None:
        """An email of the campaign was approved: make sure its lane runs."""
        approval = trace.get_current_span().get_span_context()
        if approval.is_valid:
            self._approvals[campaign_id] = approval
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
            due = await emails.due_campaigns(conn, self._clock())
            # A campaign can finish without a send to trigger it: the last decision was a
            # rejection after every approved email had gone, or a stuck send was swept.
            for finished in await emails.sent_out_campaigns(conn):
                async with conn.transaction():
                    await finish_if_done(conn, finished)
        for campaign_id in due:
            self._ensure_lane(campaign_id)

    async def sweep_stuck(self) -> int:
        """Fail emails left 'sending' by a stopped process, never one this process is sending."""
        return await emails.sweep_stuck(
            self._pool, OUTCOME_UNKNOWN, self._stuck_seconds, list(self._in_flight)
        )

    # ---- lanes ----

    def _ensure_lane(self, campaign_id: uuid.UUID) -> None:
        lane = self._lanes.get(campaign_id)
        if lane is not None and not lane.done():
            self._again.add(campaign_id)
            return
        task = asyncio.create_task(self._lane(campaign_id), name=f"send-{campaign_id}")
        self._lanes[campaign_id] = task

    async def _lane(self, campaign_id: uuid.UUID) -> None:
        # A lane outlives what woke it: each send is traced on its own (see `send_next`).
        otel_context.attach(otel_context.Context())
        try:
            while not self._stopping:
                self._again.discard(campaign_id)
                await self.drain(campaign_id)
                if campaign_id not in self._again:
                    return  # no await between this check and the removal below: no lost wake
        except Exception:
            log.exception("sending campaign %s failed; the poll will resume it", campaign_id)
        finally:
            self._lanes.pop(campaign_id, None)
            if campaign_id not in self._lanes:
                self._approvals.pop(campaign_id, None)

    async def drain(self, campaign_id: uuid.UUID) -> None:
        """Send the campaign's due email, pacing included, until none is due now (what a lane
        does each time it is woken; tests call it directly with a fake clock)."""
        async with self._pool.acquire() as conn:
            owner = await emails.campaign_owner(conn, campaign_id)
        mailbox = self.pacing.mailboxes.for_user(owner)
        await asyncio.gather(*(self._worker(campaign_id, mailbox) for _ in range(self._workers)))

    async def _worker(self, campaign_id: uuid.UUID, mailbox: Mailbox) -> None:
        # Paced email goes one at a time; unpaced, a batch saves two transactions per email.
        paced = self.pacing.limits(mailbox) or self._campaign_limit.enabled
        batch = 1 if paced else self._batch
        while not self._stopping:
            # Paced before the claim: an email waits its turn as 'approved', so a crash while
            # waiting leaves nothing in doubt; 'sending' lasts only the SMTP exchange. No
            # transaction is open while waiting.
            await self._campaign_limit.acquire(campaign_id)
            slot = None
            if self.pacing.limits(mailbox):
                if not await self._any_due(campaign_id):
                    return  # no slot taken for nothing
                slot = await self._reserve(mailbox)
                if slot is None:
                    return
            if self._stopping or not await self.send_next(campaign_id, mailbox, slot, batch):
                if slot is not None:
                    await self.pacing.release(slot)  # unused: the next email may have it
                return

    async def _any_due(self, campaign_id: uuid.UUID) -> bool:
        async with self._pool.acquire() as conn:
            return await emails.has_due(conn, campaign_id, self._clock())

    async def _reserve(self, mailbox: Mailbox) -> Reservation | None:
        """Wait for a slot of the identity's shared limits; None if the sender stops first."""
        while not self._stopping:
            now = self._clock()
            slot = await self.pacing.reserve(mailbox, now)
            if slot.granted:
                return slot
            # A day's cap is news (once a day per worker); spacing is every email's routine.
            level = logging.INFO if slot.waiting_for == "daily_cap" else logging.DEBUG
            log.log(level, "%s waits for %s until %s", mailbox.pace.key, slot.waiting_for, slot.at)
            # The clock read again: time passed while Redis answered.
            await self._sleep(max(0.001, wait_seconds(slot, self._clock())))
        return None

    def _mailer(self, mailbox: Mailbox) -> Mailer:
        key = mailbox.identity.email.lower()
        mailer = self._mailers.get(key)
        if mailer is None:
            mailer = self._mailers[key] = Mailer(mailbox.smtp)
        return mailer

    # ---- a batch of emails ----

    async def send_next(
        self,
        campaign_id: uuid.UUID,
        mailbox: Mailbox | None = None,
        slot: Reservation | None = None,
        batch: int = 1,
    ) -> bool:
        """Claim up to `batch` of the campaign's due emails (one transaction), send them one after
        the other over this worker's SMTP connection, and record their outcomes (one
        transaction); False when none is due.

        A batch saves two transactions per email; its price is what a killed process leaves: up
        to `batch` claimed emails whose outcome is unknown, failed and never resent (no second
        copy). A stopping sender gives back what it has not handed to the SMTP server yet."""
        box = mailbox or self.pacing.mailboxes.default
        rows = await self._claim(campaign_id, box, batch)
        if not rows:
            return False
        # Dated when its slot was granted: the day whose cap it counts against.
        now = slot.at if slot is not None else self._clock()
        claimed = [row["email_id"] for row in rows]
        self._in_flight.update(claimed)
        try:
            outcomes: list[tuple[EmailRef, SendDecision]] = []
            for row in rows:
                if self._stopping and outcomes:
                    break
                outcomes.append((_email_ref(row), await self._send_one(box, row, now)))
            await self._record(outcomes, unsent=claimed[len(outcomes) :])
        finally:
            self._in_flight.difference_update(claimed)
        return True

    async def _send_one(self, mailbox: Mailbox, row: dict[str, Any], now: datetime) -> SendDecision:
        """Build and send one claimed email; what its outcome means.

        Traced as a trace of its own (the loop sends when pacing allows, long after what caused
        it), linked to the trace that started the campaign's run (`ORIGINS`, when this process
        saw it) and to the latest approval's."""
        campaign_id: uuid.UUID = row["campaign_id"]
        links = [
            Link(context, {"link.cause": cause})
            for cause, context in (
                ("campaign", ORIGINS.get(campaign_id)),
                ("approval", self._approvals.get(campaign_id)),
            )
            if context is not None
        ]
        with _tracer.start_as_current_span(
            "campaign send email",
            context=otel_context.Context(),
            links=links,
            attributes={"campaign.id": str(campaign_id), "email.id": str(row["email_id"])},
        ) as span:
            try:
                message = build_message(
                    outgoing_email(row), mailbox.identity, self._links, now=now,
                    tracking=self._tracking,
                )  # fmt: skip
            except ValueError as exc:
                decision = unbuildable(str(exc))
                _sends.get("unbuildable").inc()
            else:
                started = time.perf_counter()
                outcome = await self._mailer(mailbox).send(message)
                EMAIL_SEND_DURATION.observe(time.perf_counter() - started)
                decision = decide(outcome, row["attempts"], self._policy)
                _sends.get("retry" if decision.status == "approved" else decision.status).inc()
            span.set_attribute("email.outcome", decision.status)
            return decision

    async def _claim(
        self, campaign_id: uuid.UUID, mailbox: Mailbox, batch: int
    ) -> list[dict[str, Any]]:
        """Step 1, one transaction: take up to `batch` due emails and mark them 'sending' (a
        redelivered event or another sender finds them taken). A suppressed address, or a first
        email to a candidate another campaign wrote to within the contact-frequency cap, fails
        without a send; an email whose recipient's window is closed is put off to its opening."""
        pacing = self.pacing
        async with self._pool.acquire() as conn:
            while True:
                refused = False
                claims: list[dict[str, Any]] = []
                async with conn.transaction():
                    now = self._clock()
                    rows = await emails.due_batch(
                        conn, campaign_id, now, pacing.frequency_days, batch
                    )
                    if not rows:
                        return []
                    for row in rows:
                        opens = pacing.window_closed(row, mailbox, now)
                        if opens is not None:
                            await emails.defer(conn, row["email_id"], opens, pacing.window_wait())
                            _sends.get("deferred").inc()
                            continue
                        refusal = _refusal(row, pacing.frequency_days)
                        if refusal is None:
                            claims.append(dict(row))
                            continue
                        decision, outcome = refusal
                        await emails.store_outcome(conn, row["email_id"], decision, now=now)
                        reason = decision.last_error or ""
                        await sequences.stop_sequence(conn, row["email_id"], reason)
                        _sends.get(outcome).inc()
                        refused = True
                    if claims:
                        taken = await emails.claim(
                            conn,
                            [
                                (
                                    row["email_id"],
                                    make_message_id(row["email_id"], mailbox.identity.email),
                                )
                                for row in claims
                            ],
                        )
                        claims = [{**row, **dict(taken[row["email_id"]])} for row in claims]
                if refused:
                    # Its own transaction: this one share-locked the campaign's row, and finishing
                    # locks it for update (two senders upgrading share locks would deadlock).
                    async with conn.transaction():
                        await finish_if_done(conn, campaign_id)
                if claims:
                    return claims

    async def _record(
        self, outcomes: list[tuple[EmailRef, SendDecision]], unsent: list[uuid.UUID]
    ) -> None:
        """Step 3, one transaction: the outcomes, their delivery events and suppressions, each
        recipient's next step, the claims given back, and the campaign's end of sending.
        Retried: a send accepted but not recorded is 'unknown'."""
        if not outcomes and not unsent:
            return
        now = self._clock()
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    campaign_ids: set[uuid.UUID] = set()
                    sent: list[uuid.UUID] = []
                    for email, decision in outcomes:
                        stored = await emails.store_outcome(
                            conn, email.email_id, decision, from_sending=True,
                            unknown=OUTCOME_UNKNOWN, now=now,
                        )  # fmt: skip
                        if stored:
                            await _effects(MonitoringRepository(conn), email, decision)
                            await _stop_after_failure(conn, email, decision)
                            campaign_ids.add(email.campaign_id)
                            if decision.status == "sent":
                                sent.append(email.email_id)
                    # A sent step releases each recipient's next one, if they have a sequence.
                    await sequences.release_next_steps(conn, sent, now)
                    await emails.unclaim(conn, unsent)
                    # Not the last email: the campaign row need not be locked (concurrent
                    # senders would queue on that lock). Two last emails recorded at once
                    # may each see the other open; the loop's poll finishes the campaign.
                    for campaign_id in campaign_ids:
                        if not await emails.others_open(conn, campaign_id, None):
                            await finish_if_done(conn, campaign_id)
            except TRANSIENT_ERRORS:
                if attempt == RECORD_ATTEMPTS:
                    log.exception("could not record the outcome of %d email(s)", len(outcomes))
                    raise
                await asyncio.sleep(attempt)
            else:
                return


def _refusal(row: Any, frequency_days: int) -> tuple[SendDecision, str] | None:
    """Why the claimed email must not be sent at all (and its metric's outcome), or None."""
    if row["suppressed_reason"] is not None:
        return suppressed(row["suppressed_reason"]), "suppressed"
    if row["contacted_by"] is not None:
        error = f"contacted within {frequency_days} days by campaign {row['contacted_by']}"
        return SendDecision(status="failed", last_error=error), "contact_capped"
    return None


def _email_ref(row: dict[str, Any]) -> EmailRef:
    return EmailRef(
        row["email_id"], row["campaign_id"], row["to_address"], row["message_id"], "sending",
        row["body"],
    )  # fmt: skip


async def _effects(repo: MonitoringRepository, email: EmailRef, decision: SendDecision) -> None:
    """The send's delivery event (sent, or bounced) and the suppression a hard bounce puts on
    the address, in the recording transaction."""
    if decision.suppress is not None:
        await repo.suppress(email, decision.suppress, decision.last_error or decision.suppress)
    if decision.delivery_kind is not None:
        detail = dict(decision.detail or {})
        event_id = dedupe_id(email.email_id, decision.delivery_kind, detail, None)
        await repo.record(email, decision.delivery_kind, event_id, detail)


async def _stop_after_failure(conn: Connection, email: EmailRef, decision: SendDecision) -> None:
    """A step that will never be sent stops the rest of the recipient's sequence (a follow-up to
    an email that never arrived makes no sense)."""
    if decision.status in ("failed", "bounced"):
        reason = f"an earlier step was {decision.status}"
        await sequences.stop_sequence(conn, email.email_id, reason)


async def finish_if_done(conn: Connection, campaign_id: uuid.UUID) -> bool:
    """Inside the caller's transaction: when the review is over and nothing is left to send, move
    the campaign to 'monitoring' and signal its run, once (the campaign row is locked)."""
    try:
        campaign = await campaigns.lock_campaign(conn, campaign_id)
    except Refused:
        return False  # no such campaign
    if campaign.status != "sending":
        return False
    counts = await emails.sending_counts(conn, campaign_id)
    if not sending_finished(campaign.status, counts):
        return False
    await campaigns.move_campaign(conn, campaign_id, "monitoring")
    extra = {"correlation_id": campaign.correlation_id} if campaign.correlation_id else {}
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
