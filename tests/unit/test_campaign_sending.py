"""The sending rules: what an email becomes after each SMTP outcome, suppression, when a campaign
has finished sending, and that the stored footer is not added a second time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.campaign.domain.composing import Draft, FooterContext, SenderIdentity, finalise
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.messages import build_message
from services.campaign.domain.pacing import RetryPolicy
from services.campaign.domain.sending import (
    OUTCOME_UNKNOWN,
    PermanentFailure,
    SendingCounts,
    Sent,
    TemporaryFailure,
    decide,
    finished_payload,
    outgoing_email,
    sending_finished,
    stuck_after,
    suppressed,
    unbuildable,
)

POLICY = RetryPolicy(max_attempts=3, base_seconds=60, max_seconds=3_600)
SENDER = SenderIdentity("Grace Hopper", "grace@acme.example", "Acme", "1 Harbour Road, Hamburg")
LINKS = UnsubscribeLinks("https://jobs.acme.example", "s" * 40)


def test_an_accepted_email_is_sent_with_a_sent_delivery_event() -> None:
    decision = decide(Sent("<id@acme.example>", "2.0.0 OK"), 1, POLICY)
    assert decision.status == "sent"
    assert decision.delivery_kind == "sent"
    assert decision.suppress is None
    assert decision.last_error is None
    assert decision.detail == {"message_id": "<id@acme.example>", "response": "2.0.0 OK"}
    assert decision.next_attempt_at(datetime.now(UTC)) is None


def test_a_refused_recipient_bounces_and_is_suppressed() -> None:
    decision = decide(
        PermanentFailure(550, "5.1.1 Mailbox unavailable", hard_bounce=True), 1, POLICY
    )
    assert (decision.status, decision.delivery_kind, decision.suppress) == (
        "bounced",
        "bounced",
        "hard_bounce",
    )
    assert decision.last_error == "550 5.1.1 Mailbox unavailable"
    assert decision.detail is not None
    assert decision.detail["code"] == 550


def test_a_refused_sender_or_content_fails_without_suppressing_the_address() -> None:
    decision = decide(PermanentFailure(554, "5.7.1 Rejected", hard_bounce=False), 1, POLICY)
    assert (decision.status, decision.delivery_kind, decision.suppress) == ("failed", None, None)
    assert decision.last_error == "554 5.7.1 Rejected"


def test_a_temporary_failure_goes_back_to_approved_with_backoff() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    first = decide(TemporaryFailure(451, "4.3.0 try later"), 1, POLICY)
    second = decide(TemporaryFailure(None, "connection refused"), 2, POLICY)
    assert (first.status, first.delivery_kind, first.suppress) == ("approved", None, None)
    assert first.retry_in_seconds is not None
    assert 30 <= first.retry_in_seconds <= 60
    assert second.retry_in_seconds is not None
    assert 60 <= second.retry_in_seconds <= 120
    assert first.next_attempt_at(now) == now + timedelta(seconds=first.retry_in_seconds)
    assert second.last_error == "connection refused"


def test_a_temporary_failure_on_the_last_try_fails_the_email() -> None:
    decision = decide(TemporaryFailure(451, "busy"), 3, POLICY)
    assert decision.status == "failed"
    assert decision.retry_in_seconds is None
    assert decision.last_error == "gave up after 3 tries: 451 busy"


def test_a_suppressed_address_fails_with_the_reason_and_is_not_sent() -> None:
    decision = suppressed("unsubscribed")
    assert (decision.status, decision.last_error) == ("failed", "suppressed: unsubscribed")
    assert decision.delivery_kind is None


def test_long_errors_are_cut() -> None:
    decision = unbuildable("x" * 5_000)
    assert decision.status == "failed"
    assert decision.last_error is not None
    assert len(decision.last_error) == 1_000


def test_sending_finishes_only_after_review_and_with_nothing_left() -> None:
    done = SendingCounts(open=0, sent=3, failed=1, bounced=1)
    assert sending_finished("sending", done)
    assert not sending_finished("sending", SendingCounts(open=1, sent=3, failed=0, bounced=0))
    assert not sending_finished("awaiting_review", done)  # more drafts may still be approved
    assert not sending_finished("monitoring", done)  # already signalled once
    assert finished_payload(done) == {"sent": 3, "failed": 1, "bounced": 1}


def test_a_send_counts_as_stuck_only_after_several_smtp_timeouts() -> None:
    assert stuck_after(10, 60) == 60
    assert stuck_after(30, 60) == 90
    assert "not retried" in OUTCOME_UNKNOWN


def test_the_stored_footer_is_not_added_again_when_the_message_is_built() -> None:
    email_id = uuid.uuid4()
    footer = FooterContext(SENDER, "Staff Backend Engineer", "GitHub", LINKS.url(email_id))
    stored = finalise(Draft("Staff Backend Engineer at Acme", "Hi Ada,\n\nInterested?"), footer)
    row = {
        "email_id": email_id,
        "to_address": "ada@example.org",
        "subject": stored.subject,
        "body": stored.body,
        "job_title": "Staff Backend Engineer",
        "found_via": "GitHub",
        "message_id": f"<{email_id}@acme.example>",
    }
    message = build_message(outgoing_email(row), SENDER, LINKS)
    body = message.get_content()
    assert body.count("Unsubscribe with one click") == 1
    assert body.count("-- \n") == 1
    assert body.startswith("Hi Ada,")
    assert message["Message-ID"] == f"<{email_id}@acme.example>"
    assert message["List-Unsubscribe"] == f"<{LINKS.url(email_id)}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
