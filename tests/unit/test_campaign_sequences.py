"""The rules of follow-up sequences: working days, the thread's subject and headers, which events
stop a sequence, the follow-ups' text, and the steps' ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.campaign.domain.composing import CandidateProfile, SenderIdentity
from services.campaign.domain.review import check_follow_up_decision
from services.campaign.domain.sending import sending_counts_from
from services.campaign.domain.sequences import (
    add_working_days,
    follow_up_draft,
    step_email_id,
    stops_sequence,
    thread_references,
    thread_subject,
)
from shared.contracts.campaign import EmailCampaignParams
from shared.errors import Refused

SENDER = SenderIdentity("Rita Recruiter", "rita@example.com", "Example Ltd", "1 Main St")
ADA = CandidateProfile(full_name="Ada Lovelace", first_name="Ada")
MONDAY = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (MONDAY, 0, MONDAY),
        (MONDAY, 3, datetime(2026, 12, 10, 10, 30, tzinfo=UTC)),  # Thursday
        (MONDAY, 5, datetime(2026, 12, 14, 10, 30, tzinfo=UTC)),  # next Monday
        (datetime(2026, 12, 11, 9, tzinfo=UTC), 1, datetime(2026, 12, 14, 9, tzinfo=UTC)),  # Fri
        (datetime(2026, 12, 12, 9, tzinfo=UTC), 1, datetime(2026, 12, 15, 9, tzinfo=UTC)),  # Sat
        (datetime(2026, 12, 13, 9, tzinfo=UTC), 0, datetime(2026, 12, 14, 9, tzinfo=UTC)),  # Sun
    ],
)
def test_working_days_skip_weekends(start: datetime, days: int, expected: datetime) -> None:
    assert add_working_days(start, days) == expected


def test_negative_working_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_days(MONDAY, -1)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Staff Backend role", "Re: Staff Backend role"),
        ("  Staff Backend role ", "Re: Staff Backend role"),
        ("Re: Staff Backend role", "Re: Staff Backend role"),
        ("AW: Stelle", "AW: Stelle"),
    ],
)
def test_a_follow_up_replies_in_the_first_emails_thread(subject: str, expected: str) -> None:
    assert thread_subject(subject) == expected


def test_thread_headers_name_the_first_message() -> None:
    assert thread_references("<a@example.com>") == {
        "In-Reply-To": "<a@example.com>",
        "References": "<a@example.com>",
    }
    assert thread_references(None) == {}


@pytest.mark.parametrize(
    ("kind", "detail", "stops"),
    [
        ("replied", {}, True),
        ("unsubscribed", {}, True),
        ("complained", {}, True),
        ("bounced", {"permanent": True}, True),
        ("bounced", {"permanent": False}, False),  # retried; suppressed at the soft-bounce limit
        ("bounced", {}, False),
        ("opened", {}, False),
        ("clicked", {"url": "https://example.com"}, False),
        ("delivered", {}, False),
    ],
)
def test_what_stops_a_sequence(kind: str, detail: dict[str, object], stops: bool) -> None:
    assert stops_sequence(kind, detail) is stops


def test_a_follow_up_greets_the_candidate_and_names_the_job() -> None:
    draft = follow_up_draft(1, 2, "Staff Backend role", ADA, "Staff Backend Engineer", SENDER)
    assert draft.subject == "Re: Staff Backend role"
    assert draft.body.startswith("Hi Ada,")
    assert "Staff Backend Engineer" in draft.body
    assert draft.body.rstrip().endswith("Rita Recruiter")


def test_the_last_follow_up_promises_no_more_email() -> None:
    nudge = follow_up_draft(1, 2, "Role", ADA, "Engineer", SENDER)
    last = follow_up_draft(2, 2, "Role", ADA, "Engineer", SENDER)
    assert "not write about it again" in last.body
    assert "not write about it again" not in nudge.body
    only = follow_up_draft(1, 1, "Role", ADA, "Engineer", SENDER)
    assert "not write about it again" not in only.body  # a single follow-up is a nudge


@pytest.mark.parametrize(
    ("language", "greeting", "words"),
    [("de", "Hallo Ada,", "Stelle Engineer"), ("es", "Hola Ada:", "puesto de Engineer")],
)
def test_follow_ups_are_written_in_the_candidates_language(
    language: str, greeting: str, words: str
) -> None:
    draft = follow_up_draft(1, 1, "Role", ADA, "Engineer", SENDER, language)
    assert draft.body.startswith(greeting)
    assert words in draft.body


def test_an_unknown_language_falls_back_to_english() -> None:
    assert follow_up_draft(1, 1, "R", ADA, "E", SENDER, "fr").body.startswith("Hi Ada,")


def test_a_step_outside_the_sequence_is_refused() -> None:
    with pytest.raises(ValueError, match="step 3"):
        follow_up_draft(3, 2, "Role", ADA, "Engineer", SENDER)


def test_step_ids_are_stable_and_distinct() -> None:
    campaign, candidate = uuid.uuid4(), uuid.uuid4()
    assert step_email_id(campaign, candidate, 0) == uuid.uuid5(campaign, str(candidate))
    ids = {step_email_id(campaign, candidate, step) for step in range(4)}
    assert len(ids) == 4
    assert step_email_id(campaign, candidate, 2) == step_email_id(campaign, candidate, 2)


def test_a_campaign_takes_up_to_three_follow_ups_of_1_to_30_working_days() -> None:
    slots = {"job_title": "Engineer"}
    assert EmailCampaignParams(slots=slots, follow_up_days=[3, 5]).follow_up_days == [3, 5]
    assert EmailCampaignParams(slots=slots).follow_up_days == []
    for bad in ([1, 2, 3, 4], [0], [31]):
        with pytest.raises(ValueError, match="follow_up_days"):
            EmailCampaignParams(slots=slots, follow_up_days=bad)


def test_follow_ups_still_to_go_keep_a_campaign_sending() -> None:
    firsts = {"sent": (3, 3)}
    assert sending_counts_from(firsts).open == 0
    counts = sending_counts_from(firsts, {"waiting": (2, 0), "approved": (1, 0), "sent": (4, 4)})
    assert (counts.open, counts.sent) == (3, 3)  # sent counts recipients' first emails
    done = sending_counts_from(firsts, {"stopped": (2, 0), "sent": (4, 4), "rejected": (1, 0)})
    assert done.open == 0


def test_a_follow_up_is_approved_only_with_its_first_email() -> None:
    check_follow_up_decision(0, "approve")
    check_follow_up_decision(2, "reject")
    with pytest.raises(Refused, match="approve that one") as refused:
        check_follow_up_decision(1, "approve")
    assert refused.value.code == "conflict"
