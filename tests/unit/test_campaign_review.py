"""The review rules: which decisions a draft can take, edits that keep the footer exactly once, when
the review is over, and the listing cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.campaign.domain.composing import (
    Draft,
    FooterContext,
    SenderIdentity,
    finalise,
    footer_text,
)
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.review import (
    AlreadyDecided,
    Decided,
    Edit,
    ReviewFinished,
    check_edit,
    decide,
    edited_draft,
    review_finished,
)
from services.gateway.routes_review import DraftEdit
from shared import cursors
from shared.commands import CommandTable
from shared.contracts.campaign import (
    MAX_BODY_CHARS,
    DecideDraftCommand,
    EmailStatus,
    EmailView,
    ReviewCounts,
)
from shared.contracts.common import Reply
from shared.errors import Refused

EMAIL_ID = uuid.uuid4()
SENDER = SenderIdentity(
    name="Grace Hopper",
    email="grace@acme.example",
    company="Acme Robotics",
    postal_address="1 Harbour Road, 20457 Hamburg, Germany",
)
FOOTER = FooterContext(
    SENDER,
    "Staff Backend Engineer",
    "GitHub",
    UnsubscribeLinks("https://acme.example", "s" * 32).url(EMAIL_ID),
)
ORIGINAL = finalise(Draft("Staff Backend Engineer at Acme", "Hi Ada,\n\nA role for you."), FOOTER)


def footers_in(draft: Draft) -> int:
    return draft.body.count(footer_text(FOOTER))


# ---- check_edit ------------------------------------------------------------------------------


def test_no_edit_is_none() -> None:
    assert check_edit("approve", None, None) is None
    assert check_edit("reject", None, None) is None


def test_an_edit_is_trimmed_subject_and_body_as_given() -> None:
    assert check_edit("approve", "  New subject ", "Body\n") == Edit("New subject", "Body\n")
    assert check_edit("approve", None, "Body") == Edit(None, "Body")


@pytest.mark.parametrize(
    ("subject", "body", "message"),
    [
        ("", None, "subject: must not be empty"),
        ("   ", None, "subject: must not be empty"),
        (None, "", "body: must not be empty"),
        (None, " \n\t ", "body: must not be empty"),
        ("two\nlines", None, "subject: must be one line"),
        ("x" * 201, None, "subject: at most 200 characters"),
    ],
)
def test_a_bad_edit_is_invalid_input(subject: str | None, body: str | None, message: str) -> None:
    with pytest.raises(Refused) as refused:
        check_edit("approve", subject, body)
    assert refused.value.code == "invalid_input"
    assert message in refused.value.message


def test_a_rejection_cannot_carry_an_edit() -> None:
    with pytest.raises(Refused) as refused:
        check_edit("reject", "New subject", None)
    assert refused.value.code == "invalid_input"


# ---- edited_draft: the footer stays exactly once ---------------------------------------------


def test_an_edited_body_without_the_footer_gets_it_back() -> None:
    draft = edited_draft(ORIGINAL, Edit(body="Hi Ada,\n\nRewritten."), FOOTER)
    assert draft.body.startswith("Hi Ada,\n\nRewritten.\n\n-- \n")
    assert footers_in(draft) == 1
    assert draft.subject == ORIGINAL.subject


def test_a_body_sent_back_with_the_footer_keeps_one() -> None:
    body = ORIGINAL.body.replace("A role for you.", "A better role for you.")
    draft = edited_draft(ORIGINAL, Edit(body=body), FOOTER)
    assert footers_in(draft) == 1
    assert "A better role for you." in draft.body


def test_a_body_with_the_footer_twice_or_with_windows_newlines_keeps_one() -> None:
    footer = footer_text(FOOTER)
    body = f"Hi.\r\n\r\n{footer}\r\n\r\n{footer}".replace("\n", "\r\n")
    draft = edited_draft(ORIGINAL, Edit(body=body), FOOTER)
    assert footers_in(draft) == 1
    assert "\r" not in draft.body


def test_the_unchanged_draft_sent_back_is_not_an_edit() -> None:
    draft = edited_draft(ORIGINAL, Edit(subject=ORIGINAL.subject, body=ORIGINAL.body), FOOTER)
    assert draft == ORIGINAL


def test_a_subject_only_edit_keeps_the_body() -> None:
    draft = edited_draft(ORIGINAL, Edit(subject="Coffee?"), FOOTER)
    assert draft == Draft("Coffee?", ORIGINAL.body)


def test_a_body_that_is_only_the_footer_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        edited_draft(ORIGINAL, Edit(body=footer_text(FOOTER)), FOOTER)
    assert refused.value.code == "invalid_input"


def test_a_body_too_long_is_refused() -> None:
    with pytest.raises(Refused, match=f"at most {MAX_BODY_CHARS}"):
        edited_draft(ORIGINAL, Edit(body="x" * (MAX_BODY_CHARS + 1)), FOOTER)


# ---- decide ----------------------------------------------------------------------------------


def test_a_draft_is_approved_or_rejected() -> None:
    assert decide(EMAIL_ID, "drafted", "approve", ORIGINAL) == Decided("approved", ORIGINAL, False)
    assert decide(EMAIL_ID, "drafted", "reject", ORIGINAL) == Decided("rejected", ORIGINAL, False)


def test_an_edited_approval_is_marked_edited_unless_nothing_changed() -> None:
    changed = Draft("Coffee?", ORIGINAL.body)
    assert decide(EMAIL_ID, "drafted", "approve", ORIGINAL, changed) == Decided(
        "approved", changed, True
    )
    assert decide(EMAIL_ID, "drafted", "approve", ORIGINAL, ORIGINAL) == Decided(
        "approved", ORIGINAL, False
    )


@pytest.mark.parametrize("status", ["approved", "sending", "sent", "failed", "bounced"])
def test_approving_again_changes_nothing(status: EmailStatus) -> None:
    assert decide(EMAIL_ID, status, "approve", ORIGINAL) == AlreadyDecided()
    assert decide(EMAIL_ID, status, "approve", ORIGINAL, ORIGINAL) == AlreadyDecided()


def test_rejecting_again_changes_nothing() -> None:
    assert decide(EMAIL_ID, "rejected", "reject", ORIGINAL) == AlreadyDecided()


@pytest.mark.parametrize("status", ["approved", "sent"])
def test_editing_an_approved_or_sent_email_is_a_conflict(status: EmailStatus) -> None:
    with pytest.raises(Refused) as refused:
        decide(EMAIL_ID, status, "approve", ORIGINAL, Draft("Coffee?", ORIGINAL.body))
    assert refused.value.code == "conflict"
    assert f"is already {status}" in refused.value.message


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        ("rejected", "approve"),
        ("expired", "approve"),
        ("expired", "reject"),
        ("approved", "reject"),
        ("sent", "reject"),
        ("sending", "reject"),
    ],
)
def test_a_decided_email_cannot_take_the_other_decision(status: EmailStatus, decision: str) -> None:
    with pytest.raises(Refused) as refused:
        decide(EMAIL_ID, status, "approve" if decision == "approve" else "reject", ORIGINAL)
    assert refused.value.code == "conflict"
    assert f"is {status}" in refused.value.message


# ---- review_finished -------------------------------------------------------------------------


def test_the_review_goes_on_while_a_draft_is_pending() -> None:
    assert review_finished(ReviewCounts(drafted=1, approved=3, rejected=0, expired=0)) is None


def test_the_review_ends_sending_when_any_is_approved() -> None:
    assert review_finished(
        ReviewCounts(drafted=0, approved=2, rejected=1, expired=0)
    ) == ReviewFinished({"approved": 2, "rejected": 1, "expired": 0}, "sending")


def test_the_review_ends_sending_even_when_none_is_approved() -> None:
    # The sender then finds nothing to send and finishes the campaign (`sending_finished`).
    finished = review_finished(ReviewCounts(drafted=0, approved=0, rejected=3, expired=0))
    assert finished is not None
    assert finished.campaign_status == "sending"
    assert finished.payload == {"approved": 0, "rejected": 3, "expired": 0}


# ---- cursor and contracts --------------------------------------------------------------------


def test_the_cursor_round_trips_and_a_forged_one_is_invalid_input() -> None:
    view = EmailView(
        email_id=EMAIL_ID, campaign_id=uuid.uuid4(), candidate_id=uuid.uuid4(), rank=7,
        to_address="ada@example.com", subject="s", body="b", status="drafted", edited=False,
        created_at=datetime.now(UTC),
    )  # fmt: skip
    assert cursors.decode_rank(cursors.encode(view.rank, view.email_id)) == (7, EMAIL_ID)
    for forged in ["not-base64!", "aGVsbG8=", ""]:
        with pytest.raises(Refused) as refused:
            cursors.decode_rank(forged)
        assert refused.value.code == "invalid_input"


def test_the_campaign_service_decodes_its_review_commands_and_no_other_service_does() -> None:
    command = DecideDraftCommand(
        campaign_id=uuid.uuid4(), email_id=EMAIL_ID, decision="approve", reviewed_by="sam"
    )
    body = command.model_dump(mode="json")
    campaign = CommandTable("campaign", {DecideDraftCommand: "decide"})
    assert campaign.decode(body) == (command, "decide")
    other = CommandTable("workflow", {})
    refused = other.decode(body)
    assert isinstance(refused, Reply)
    assert refused.error is not None
    assert refused.error.code == "unsupported"
    broken = campaign.decode({**body, "decision": "maybe"})
    assert isinstance(broken, Reply)
    assert broken.error is not None
    assert broken.error.code == "invalid_input"
    assert "decision" in broken.error.message


@pytest.mark.parametrize(
    "body",
    [{"subject": ""}, {"body": "  "}, {"subject": "a\nb"}, {"extra": 1}, {"body": 3}],
)
def test_the_http_edit_refuses_empty_multi_line_unknown_and_non_text(
    body: dict[str, object],
) -> None:
    with pytest.raises(ValidationError):
        DraftEdit.model_validate(body)
