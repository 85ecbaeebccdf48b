"""The rules of sending an approved email exactly once: what a claimed email becomes given the
suppression list and the SMTP outcome, when a campaign has finished sending, and what an email
left mid-send by a dead process becomes.

Plain Python (no Kafka, database or SMTP); `services/campaign/sender.py` applies the decisions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from services.campaign.domain.pacing import RetryPolicy
from services.campaign.domain.status import OPEN_STATUSES, StatusCounts, count_of

# An email claimed ('sending') whose process died before recording the outcome: the relay may
# have accepted it, so it is not tried again (a second copy is worse than a missing one).
OUTCOME_UNKNOWN = "outcome unknown (the sender stopped mid-send); not retried to avoid a duplicate"
MAX_ERROR_CHARS = 1_000

EmailStatus = Literal["approved", "sent", "failed", "bounced"]


@dataclass(frozen=True)
class SendDecision:
    """What to store for one email after a send attempt (or instead of one)."""

    status: EmailStatus
    last_error: str | None = None
    retry_in_seconds: float | None = None  # with status 'approved': when to try again
    delivery_kind: Literal["sent", "bounced"] | None = None  # a delivery event to record
    suppress: Literal["hard_bounce"] | None = None  # put the address on the suppression list
    detail: Mapping[str, Any] | None = None  # the delivery event's detail

    def next_attempt_at(self, now: datetime) -> datetime | None:
        if self.retry_in_seconds is None:
            return None
        return now + timedelta(seconds=self.retry_in_seconds)


def suppressed(reason: str) -> SendDecision:
    """The address is on the suppression list: fail the email without sending."""
    return SendDecision(status="failed", last_error=f"suppressed: {reason}")


def unbuildable(error: str) -> SendDecision:
    """The message cannot be written safely (a line break in the subject, a bad address)."""
    return SendDecision(status="failed", last_error=_cut(f"cannot build the message: {error}"))


def decide(outcome: SendOutcome, attempts: int, policy: RetryPolicy) -> SendDecision:
    """What a send's outcome means for the email. `attempts` counts tries made, this one
    included (the claim added it)."""
    if isinstance(outcome, Sent):
        return SendDecision(
            status="sent",
            delivery_kind="sent",
            detail={"message_id": outcome.message_id, "response": _cut(outcome.response)},
        )
    error = _describe(outcome)
    if isinstance(outcome, PermanentFailure):
        if outcome.hard_bounce:
            return SendDecision(
                status="bounced",
                last_error=error,
                delivery_kind="bounced",
                suppress="hard_bounce",
                detail={"permanent": True, "code": outcome.code, "message": _cut(outcome.message)},
            )
        return SendDecision(status="failed", last_error=error)
    assert isinstance(outcome, TemporaryFailure)
    delay = policy.delay_after(attempts)
    if delay is None:
        return SendDecision(status="failed", last_error=f"gave up after {attempts} tries: {error}")
    return SendDecision(status="approved", last_error=error, retry_in_seconds=delay)


def _describe(outcome: PermanentFailure | TemporaryFailure) -> str:
    code = f"{outcome.code} " if outcome.code is not None else ""
    return _cut(f"{code}{outcome.message}".strip())


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def outgoing_email(row: Mapping[str, Any]) -> OutgoingEmail:
    """The email as the database holds it. The stored body already ends with the footer
    (composing.finalise, at drafting and on every edit); build_message sees the same footer and
    leaves it alone, so it appears once."""
    return OutgoingEmail(
        email_id=row["email_id"],
        to_address=row["to_address"],
        subject=row["subject"],
        body=row["body"],
        job_title=row["job_title"],
        found_via=row["found_via"],
        message_id=row["message_id"],
        in_reply_to=row.get("in_reply_to"),
    )


@dataclass(frozen=True)
class SendingCounts:
    """A campaign's emails by status, as far as sending is concerned."""

    open: int  # approved or sending: still to be sent
    sent: int
    failed: int
    bounced: int


def sending_counts_from(
    statuses: StatusCounts, follow_ups: StatusCounts | None = None
) -> SendingCounts:
    """The sending counts from the campaign's first emails per status; follow-ups still to be
    sent (`follow_ups`, per status) keep the campaign sending too."""
    return SendingCounts(
        open=count_of(statuses, *OPEN_STATUSES) + count_of(follow_ups or {}, *OPEN_STATUSES),
        sent=count_of(statuses, "sent"),
        failed=count_of(statuses, "failed"),
        bounced=count_of(statuses, "bounced"),
    )


def sending_finished(campaign_status: str, counts: SendingCounts) -> bool:
    """The review is over (the campaign is 'sending') and no email is left to send."""
    return campaign_status == "sending" and counts.open == 0


def finished_payload(counts: SendingCounts) -> dict[str, int]:
    return {"sent": counts.sent, "failed": counts.failed, "bounced": counts.bounced}


def stuck_after(smtp_timeout_seconds: float, configured_seconds: float) -> float:
    """How long an email may stay 'sending' before it counts as left by a dead process. Never
    less than a few SMTP timeouts: a live sender is still waiting on the relay until then."""
    return max(configured_seconds, 3 * smtp_timeout_seconds)


@dataclass(frozen=True)
class OutgoingEmail:
    """One approved email as the database holds it: the reviewed draft, without the footer."""

    email_id: uuid.UUID
    to_address: str
    subject: str
    body: str
    job_title: str
    found_via: str | None
    message_id: str | None = None  # the row's message_id; None: derived from email_id
    in_reply_to: str | None = None  # a follow-up's thread: the first email's Message-ID


@dataclass(frozen=True)
class Sent:
    message_id: str
    response: str


@dataclass(frozen=True)
class PermanentFailure:
    """A 5xx answer: retrying will not help. `hard_bounce` is true when the server refused the
    recipient itself, so the address belongs on the suppression list; a refused sender, login or
    message content is our problem, not the address's."""

    code: int | None
    message: str
    hard_bounce: bool


@dataclass(frozen=True)
class TemporaryFailure:
    """A 4xx answer, a refused or dropped connection or a timeout: retry later with backoff."""

    code: int | None
    message: str


SendOutcome = Sent | PermanentFailure | TemporaryFailure
