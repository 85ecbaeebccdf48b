"""Reviewing a campaign's drafts: the decision rules (plain Python, unit-tested directly) and the
repository functions the review commands and the `campaign.expire_drafts` action use.

Only a `drafted` email can be decided. Its status changes only here (a decision, or expiry at
the review deadline), always after the campaign's row is locked, so concurrent decisions about
one campaign are serialised and the review is seen to finish exactly once.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from services.campaign.composing import Draft, FooterContext, finalise, footer_text
from shared.campaign_review import (
    MAX_BODY_CHARS,
    MAX_SUBJECT_CHARS,
    Decision,
    EmailStatus,
    EmailView,
    ReviewCounts,
)
from shared.db import Connection

# Statuses an email reaches only by being approved: approving it again changes nothing.
APPROVED_STATUSES: frozenset[str] = frozenset({"approved", "sending", "sent", "failed", "bounced"})
DECIDED_STATUS: dict[Decision, Literal["approved", "rejected"]] = {
    "approve": "approved",
    "reject": "rejected",
}


class ReviewRefused(Exception):
    """A decision that cannot be made; `code` is a reply error code (not_found, conflict,
    invalid_input), the message says why for the reviewer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- Rules -----------------------------------------------------------------------------------


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
        raise ReviewRefused("invalid_input", "only an approval can edit the draft; reject it as is")
    if subject is not None:
        subject = subject.strip()
        if not subject:
            raise ReviewRefused("invalid_input", "subject: must not be empty or only whitespace")
        if "\n" in subject or "\r" in subject:
            raise ReviewRefused("invalid_input", "subject: must be one line")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise ReviewRefused("invalid_input", f"subject: at most {MAX_SUBJECT_CHARS} characters")
    if body is not None and not body.strip():
        raise ReviewRefused("invalid_input", "body: must not be empty or only whitespace")
    return Edit(subject=subject, body=body)


def edited_draft(current: Draft, edit: Edit, footer: FooterContext) -> Draft:
    """The draft after `edit`, with the system's footer exactly once at its end: a body sent back
    with the footer (as listed) has it removed first, and one without it gets it again, so a
    reviewer can neither remove nor duplicate it."""
    subject = current.subject if edit.subject is None else edit.subject
    if edit.body is None:
        return finalise(Draft(subject, current.body), footer)
    text = edit.body.replace("\r\n", "\n").replace(footer_text(footer), "").rstrip()
    if not text.strip():
        raise ReviewRefused("invalid_input", "body: must not be empty apart from the footer")
    if len(text) > MAX_BODY_CHARS:
        raise ReviewRefused("invalid_input", f"body: at most {MAX_BODY_CHARS} characters")
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
        raise ReviewRefused(
            "conflict", f"email {email_id} is already {status}; it can no longer be edited"
        )
    raise ReviewRefused(
        "conflict",
        f"email {email_id} is {status}, so it can no longer be {DECIDED_STATUS[decision]}",
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


def encode_cursor(view: EmailView) -> str:
    return base64.urlsafe_b64encode(f"{view.rank or 0}|{view.email_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    try:
        rank, email_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return int(rank), uuid.UUID(email_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ReviewRefused("invalid_input", "the cursor is not one this API returned") from exc


# ---- Repository ------------------------------------------------------------------------------

_VIEW_COLUMNS = (
    "e.email_id, e.campaign_id, e.candidate_id, r.rank, e.to_address, e.subject, e.body,"
    " e.status, e.edited, e.reviewed_by, e.reviewed_at, e.created_at"
)


def email_view(row: asyncpg.Record) -> EmailView:
    return EmailView.model_validate(dict(row))


async def lock_campaign(conn: Connection, campaign_id: uuid.UUID) -> str:
    """Lock the campaign's row for this transaction and return its status; not_found if none."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1 FOR UPDATE", campaign_id
    )
    if status is None:
        raise ReviewRefused("not_found", f"no campaign {campaign_id}")
    return status


async def require_campaign(conn: Connection, campaign_id: uuid.UUID) -> None:
    """not_found unless the campaign exists."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign.campaigns WHERE campaign_id = $1)", campaign_id
    ):
        raise ReviewRefused("not_found", f"no campaign {campaign_id}")


@dataclass(frozen=True)
class StoredEmail:
    view: EmailView
    job_title: str
    found_via: str | None


async def get_email(conn: Connection, campaign_id: uuid.UUID, email_id: uuid.UUID) -> StoredEmail:
    """An email of this campaign with what its footer needs; not_found for one of another."""
    row = await conn.fetchrow(
        f"SELECT {_VIEW_COLUMNS}, j.title AS job_title, c.found_via"  # noqa: S608 - constant
        " FROM campaign.emails e"
        " JOIN campaign.jobs j USING (job_id)"
        " JOIN campaign.candidates c USING (candidate_id)"
        " LEFT JOIN campaign.recipients r USING (campaign_id, candidate_id)"
        " WHERE e.email_id = $1 AND e.campaign_id = $2",
        email_id,
        campaign_id,
    )
    if row is None:
        raise ReviewRefused("not_found", f"campaign {campaign_id} has no email {email_id}")
    return StoredEmail(email_view(row), row["job_title"], row["found_via"])


async def store_decision(
    conn: Connection, email_id: uuid.UUID, decided: Decided, reviewed_by: str
) -> EmailView:
    """Write a decision about a draft (the caller holds the campaign's lock)."""
    row = await conn.fetchrow(
        "WITH e AS (UPDATE campaign.emails SET status = $2, subject = $3, body = $4,"  # noqa: S608
        "  edited = $5, reviewed_by = $6, reviewed_at = now(), updated_at = now()"
        "  WHERE email_id = $1 AND status = 'drafted' RETURNING *)"
        f" SELECT {_VIEW_COLUMNS} FROM e"
        " LEFT JOIN campaign.recipients r USING (campaign_id, candidate_id)",
        email_id, decided.status, decided.draft.subject, decided.draft.body, decided.edited,
        reviewed_by,
    )  # fmt: skip
    assert row is not None, "the campaign lock keeps the draft pending until now"
    return email_view(row)


async def decide_pending(
    conn: Connection, campaign_id: uuid.UUID, decision: Decision, reviewed_by: str
) -> list[EmailView]:
    """Decide every draft of the campaign still pending, as they are; the ones decided, by rank."""
    rows = await conn.fetch(
        "WITH e AS (UPDATE campaign.emails SET status = $2, reviewed_by = $3,"  # noqa: S608
        "  reviewed_at = now(), updated_at = now()"
        "  WHERE campaign_id = $1 AND status = 'drafted' RETURNING *)"
        f" SELECT {_VIEW_COLUMNS} FROM e"
        " LEFT JOIN campaign.recipients r USING (campaign_id, candidate_id)"
        " ORDER BY r.rank, e.email_id",
        campaign_id,
        DECIDED_STATUS[decision],
        reviewed_by,
    )
    return [email_view(row) for row in rows]


async def review_counts(conn: Connection, campaign_id: uuid.UUID) -> ReviewCounts:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'drafted') AS drafted,"
        " count(*) FILTER (WHERE status = ANY($2::text[])) AS approved,"
        " count(*) FILTER (WHERE status = 'rejected') AS rejected,"
        " count(*) FILTER (WHERE status = 'expired') AS expired"
        " FROM campaign.emails WHERE campaign_id = $1",
        campaign_id,
        sorted(APPROVED_STATUSES),
    )
    assert row is not None
    return ReviewCounts.model_validate(dict(row))


async def set_campaign_status(conn: Connection, campaign_id: uuid.UUID, status: str) -> None:
    """Move a campaign on from review; one that has moved on already keeps its status."""
    await conn.execute(
        "UPDATE campaign.campaigns SET status = $2, updated_at = now()"
        " WHERE campaign_id = $1 AND status = 'awaiting_review'",
        campaign_id,
        status,
    )


async def list_emails(
    conn: Connection,
    campaign_id: uuid.UUID,
    status: EmailStatus | None,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
) -> list[EmailView]:
    """Up to `limit` emails of the campaign, by recipient rank, after the cursor `after`."""
    rows = await conn.fetch(
        f"SELECT {_VIEW_COLUMNS} FROM campaign.emails e"  # noqa: S608 - constant
        " LEFT JOIN campaign.recipients r USING (campaign_id, candidate_id)"
        " WHERE e.campaign_id = $1 AND ($2::text IS NULL OR e.status = $2)"
        "  AND ($3::int IS NULL OR (coalesce(r.rank, 0), e.email_id) > ($3, $4::uuid))"
        " ORDER BY coalesce(r.rank, 0), e.email_id LIMIT $5",
        campaign_id,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [email_view(row) for row in rows]


async def expire_drafts(conn: Connection, campaign_id: uuid.UUID) -> int:
    """At the review deadline: every pending draft expires (and is never sent) and the campaign
    is expired. Returns how many drafts expired; a campaign that does not exist expires none."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1 FOR UPDATE", campaign_id
    )
    if status is None:
        return 0
    expired: int = await conn.fetchval(
        "WITH e AS (UPDATE campaign.emails SET status = 'expired', updated_at = now()"
        "  WHERE campaign_id = $1 AND status = 'drafted' RETURNING 1)"
        " SELECT count(*) FROM e",
        campaign_id,
    )
    await conn.execute(
        "UPDATE campaign.campaigns SET status = 'expired', updated_at = now(),"
        " completed_at = coalesce(completed_at, now()) WHERE campaign_id = $1",
        campaign_id,
    )
    return expired
