"""The rules of reviewing a campaign's drafts: which edits are allowed, what a decision does to an
email in each status, when the review is over, and the list's cursor. The review commands
(`handlers/review.py`) apply them; `repository/emails.py` stores the outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.campaign.domain.composing import (
    Draft,
    FooterContext,
    finalise,
    footer_in,
    without_footer,
)
from services.campaign.domain.status import APPROVED_STATUSES, StatusCounts, count_of
from shared.contracts.campaign import (
    EMAIL_CAMPAIGN,
    MAX_BODY_CHARS,
    MAX_SUBJECT_CHARS,
    REVIEW_FINISHED,
    Decision,
    EmailStatus,
    ReviewCounts,
)
from shared.contracts.workflow import WorkflowRunChanged
from shared.errors import Refused

DECIDED_STATUS: dict[Decision, Literal["approved", "rejected"]] = {
    "approve": "approved",
    "reject": "rejected",
}


@dataclass(frozen=True)
class Edit:
    """A reviewer's change to a draft: either part may be left as it is (None)."""

    subject: str | None = None
    body: str | None = None


def check_edit(decision: Decision, subject: str | None, body: str | None) -> Edit | None:
    """The edit a command asks for, or None; refuses an empty or malformed one before anything
    is read or written."""
    if subject is None and body is None:
        return None
    if decision != "approve":
        raise Refused("only an approval can edit the draft; reject it as is", code="invalid_input")
    return check_draft_edit(subject, body)


def check_draft_edit(subject: str | None, body: str | None) -> Edit:
    """An edit saved on its own (or with an approval): at least one part, each part well formed;
    refused before anything is read or written."""
    if subject is None and body is None:
        raise Refused("an edit needs a subject or a body", code="invalid_input")
    if subject is not None:
        subject = subject.strip()
        if not subject:
            raise Refused("subject: must not be empty or only whitespace", code="invalid_input")
        if "\n" in subject or "\r" in subject:
            raise Refused("subject: must be one line", code="invalid_input")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise Refused(f"subject: at most {MAX_SUBJECT_CHARS} characters", code="invalid_input")
    if body is not None and not body.strip():
        raise Refused("body: must not be empty or only whitespace", code="invalid_input")
    return Edit(subject=subject, body=body)


def edited_draft(current: Draft, edit: Edit, footer: FooterContext) -> Draft:
    """The draft after `edit`, with the system's footer exactly once at its end: a body sent back
    with the footer (as listed) has it removed first, and one without it gets it again, so a
    reviewer can neither remove nor duplicate it."""
    subject = current.subject if edit.subject is None else edit.subject
    # The draft keeps the footer it was drafted with (its language, with or without the notice).
    footer = footer_in(current.body, footer) or footer
    if edit.body is None:
        return finalise(Draft(subject, current.body), footer)
    text = without_footer(edit.body.replace("\r\n", "\n"), footer).rstrip()
    if not text.strip():
        raise Refused("body: must not be empty apart from the footer", code="invalid_input")
    if len(text) > MAX_BODY_CHARS:
        raise Refused(f"body: at most {MAX_BODY_CHARS} characters", code="invalid_input")
    return finalise(Draft(subject, text), footer)


@dataclass(frozen=True)
class Decided:
    """Store this: the email's new status and content."""

    status: Literal["approved", "rejected"]
    draft: Draft
    edited: bool


@dataclass(frozen=True)
class AlreadyDecided:
    """The same decision was made before (a repeated request): change nothing, announce nothing."""


def decide(
    email_id: uuid.UUID,
    status: EmailStatus,
    decision: Decision,
    current: Draft,
    proposed: Draft | None = None,
) -> Decided | AlreadyDecided:
    """What deciding an email in `status` does; `proposed` is the edited draft, if any."""
    if status == "drafted":
        draft = proposed or current
        return Decided(DECIDED_STATUS[decision], draft, edited=draft != current)
    repeated = status in APPROVED_STATUSES if decision == "approve" else status == "rejected"
    if repeated and (proposed is None or proposed == current):
        return AlreadyDecided()
    if repeated:
        raise Refused(
            f"email {email_id} is already {status}; it can no longer be edited", code="conflict"
        )
    raise Refused(
        f"email {email_id} is {status}, so it can no longer be {DECIDED_STATUS[decision]}",
        code="conflict",
    )


def check_follow_up_decision(step: int, decision: Decision) -> None:
    """A follow-up is approved with its first email (approving a recipient approves their
    sequence); on its own it can only be dropped (rejected) or edited."""
    if step > 0 and decision == "approve":
        raise Refused(
            f"this is follow-up {step} of a sequence: it is approved with the recipient's first "
            "email (approve that one); a follow-up alone can be edited or rejected",
            code="conflict",
        )


def check_editable(email_id: uuid.UUID, status: EmailStatus) -> None:
    """An edit saved without a decision: only a draft (still pending) can take one."""
    if status != "drafted":
        raise Refused(
            f"email {email_id} is {status}; only a drafted email can be edited", code="conflict"
        )


@dataclass(frozen=True)
class ReviewFinished:
    """No draft is pending: the campaign moves on to `campaign_status` and its run is signalled
    with `payload`."""

    payload: dict[str, int]
    # Always 'sending', even with nothing approved: the sender finishes a 'sending' campaign that
    # has nothing left to send (signal `sending_finished`, status 'monitoring'). A campaign marked
    # 'completed' here would leave its run waiting in `await_sending` for ever.
    campaign_status: Literal["sending"] = "sending"


def review_finished(counts: ReviewCounts) -> ReviewFinished | None:
    """Whether the review is over once these are the campaign's counts."""
    if counts.drafted:
        return None
    return ReviewFinished(
        {"approved": counts.approved, "rejected": counts.rejected, "expired": counts.expired}
    )


def review_counts_from(statuses: StatusCounts) -> ReviewCounts:
    """The review's counts from the campaign's emails per status."""
    return ReviewCounts(
        drafted=count_of(statuses, "drafted"),
        approved=count_of(statuses, *APPROVED_STATUSES),
        rejected=count_of(statuses, "rejected"),
        expired=count_of(statuses, "expired"),
    )


def review_deadline(event: WorkflowRunChanged) -> tuple[uuid.UUID, datetime] | None:
    """The campaign and its review deadline, when `event` says an email campaign's run started
    waiting for its review (the deadline the run expires the drafts at); else None. The run's id
    is the campaign's."""
    if event.workflow_type != EMAIL_CAMPAIGN or event.change != "waiting":
        return None
    deadline = event.detail.get("deadline_at")
    if event.detail.get("signal") != REVIEW_FINISHED or not isinstance(deadline, str):
        return None
    try:
        return event.run_id, datetime.fromisoformat(deadline)
    except ValueError:
        return None
