"""A campaign's emails: drafts as they are written, the review's reads and decisions, expiry at
the review deadline, and the send queue (the database is the queue: an email is claimed, sent and
its outcome stored, each in its own short transaction; see `sender.py`).

Only a `drafted` email can be decided, always after the campaign's row is locked
(`campaigns.lock_campaign`), so concurrent decisions about one campaign are serialised and the
review is seen to finish exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from services.campaign.domain.composing import Draft
from services.campaign.domain.review import DECIDED_STATUS, Decided, review_counts_from
from services.campaign.domain.sending import SendDecision, SendingCounts, sending_counts_from
from services.campaign.domain.sequences import STOPPABLE_STATUSES
from services.campaign.domain.status import OPEN_STATUSES, StatusCounts
from shared.contracts.campaign import (
    CandidateProfile,
    Decision,
    EmailStatus,
    EmailView,
    FollowUpView,
    ReviewCounts,
)
from shared.db import Connection, Database
from shared.errors import Refused

# An email as the review shows it: its row `e`, its recipient's rank and matched skills `r`, and
# its candidate's profile `c` (prefixed `c_`), each joined by key, in the same query (no query
# per email, however long the page).
_VIEW_COLUMNS = (
    "e.email_id, e.campaign_id, e.candidate_id, r.rank, e.to_address, e.subject, e.body,"
    " e.status, e.edited, e.reviewed_by, e.reviewed_at, e.created_at,"
    " c.full_name AS c_full_name, c.city AS c_city, c.country AS c_country,"
    " c.seniority AS c_seniority, c.years_experience AS c_years_experience,"
    " c.skills AS c_skills, coalesce(r.matched_skills, '{}') AS c_matched_skills,"
    " c.headline AS c_headline, c.source AS c_source, c.found_via AS c_found_via, e.step"
)
_VIEW_JOINS = (
    " LEFT JOIN campaign.recipients r"
    "  ON r.campaign_id = e.campaign_id AND r.candidate_id = e.candidate_id"
    " LEFT JOIN campaign.candidates c ON c.candidate_id = e.candidate_id"
)
_PROFILE_PREFIX = "c_"
# The status a decision gives an email ($2: 'approved' or 'rejected'): an approved follow-up waits
# for the step before it to be sent (`repository/sequences.py` releases it).
_DECIDED = "CASE WHEN step > 0 AND $2 = 'approved' THEN 'waiting' ELSE $2 END"


def email_view(row: asyncpg.Record) -> EmailView:
    fields: dict[str, Any] = {}
    profile: dict[str, Any] = {}
    for name, value in row.items():
        if name.startswith(_PROFILE_PREFIX):
            profile[name.removeprefix(_PROFILE_PREFIX)] = value
        else:
            fields[name] = value
    if profile.get("full_name") is not None:
        fields["candidate"] = CandidateProfile.model_validate(profile)
    return EmailView.model_validate(fields)


@dataclass(frozen=True)
class StoredEmail:
    view: EmailView
    job_title: str
    found_via: str | None


async def get_email(conn: Connection, campaign_id: uuid.UUID, email_id: uuid.UUID) -> StoredEmail:
    """An email of this campaign with what its footer needs; not_found for one of another."""
    row = await conn.fetchrow(
        f"SELECT {_VIEW_COLUMNS}, j.title AS job_title"  # noqa: S608 - constant
        " FROM campaign.emails e"
        " JOIN campaign.jobs j ON j.job_id = e.job_id"
        f"{_VIEW_JOINS}"
        " WHERE e.email_id = $1 AND e.campaign_id = $2",
        email_id,
        campaign_id,
    )
    if row is None:
        raise Refused(f"campaign {campaign_id} has no email {email_id}", code="not_found")
    return StoredEmail(email_view(row), row["job_title"], row["c_found_via"])


async def store_decision(
    conn: Connection, email_id: uuid.UUID, decided: Decided, reviewed_by: str
) -> EmailView:
    """Write a decision about a draft (the caller holds the campaign's lock). An email whose
    edit was saved before stays `edited`. Deciding a first email decides its follow-ups still
    pending the same way (approving a recipient approves their sequence); an approved follow-up
    is 'waiting' until the step before it is sent."""
    row = await conn.fetchrow(
        "WITH e AS (UPDATE campaign.emails SET status = " + _DECIDED + ","  # noqa: S608
        "  subject = $3, body = $4,"
        "  edited = edited OR $5, reviewed_by = $6, reviewed_at = now(), updated_at = now()"
        "  WHERE email_id = $1 AND status = 'drafted' RETURNING *)"
        f" SELECT {_VIEW_COLUMNS} FROM e{_VIEW_JOINS}",
        email_id, decided.status, decided.draft.subject, decided.draft.body, decided.edited,
        reviewed_by,
    )  # fmt: skip
    assert row is not None, "the campaign lock keeps the draft pending until now"
    if row["step"] == 0:
        await conn.execute(
            "UPDATE campaign.emails SET status = " + _DECIDED + ","  # noqa: S608
            " reviewed_by = $3, reviewed_at = now(), updated_at = now()"
            " WHERE campaign_id = $4 AND candidate_id = $1 AND step > 0 AND status = 'drafted'",
            row["candidate_id"], decided.status, reviewed_by, row["campaign_id"],
        )  # fmt: skip
    return (await _with_follow_ups(conn, email_view(row)))[0]


async def keep_revision(
    conn: Connection, email_id: uuid.UUID, before: Draft, after: Draft, edited_by: str
) -> int:
    """Record an edit of the email (the caller holds the campaign's lock): its text as drafted
    becomes revision 0 on the first edit, then `after` the next revision; the revision's number."""
    await conn.execute(
        "INSERT INTO campaign.email_revisions (email_id, revision, subject, body, edited_by)"
        " SELECT email_id, 0, $2, $3, coalesce(drafted_by, 'drafted') FROM campaign.emails"
        " WHERE email_id = $1 ON CONFLICT (email_id, revision) DO NOTHING",
        email_id, before.subject, before.body,
    )  # fmt: skip
    revision: int = await conn.fetchval(
        "INSERT INTO campaign.email_revisions (email_id, revision, subject, body, edited_by)"
        " SELECT $1, max(revision) + 1, $2, $3, $4 FROM campaign.email_revisions"
        " WHERE email_id = $1 RETURNING revision",
        email_id, after.subject, after.body, edited_by,
    )  # fmt: skip
    return revision


async def revisions(conn: Connection, campaign_id: uuid.UUID, email_id: uuid.UUID) -> list[Any]:
    """The email's revisions, oldest first (none if it was never edited)."""
    rows: list[Any] = await conn.fetch(
        "SELECT r.revision, r.subject, r.body, r.edited_by, r.edited_at"
        " FROM campaign.email_revisions r JOIN campaign.emails e USING (email_id)"
        " WHERE r.email_id = $1 AND e.campaign_id = $2 ORDER BY r.revision",
        email_id,
        campaign_id,
    )
    return rows


async def store_edit(
    conn: Connection, email_id: uuid.UUID, draft: Draft, changed: bool
) -> EmailView:
    """Save a draft's new subject and body without deciding it (the caller holds the campaign's
    lock); `changed` marks it `edited`."""
    row = await conn.fetchrow(
        "WITH e AS (UPDATE campaign.emails SET subject = $2, body = $3,"  # noqa: S608
        "  edited = edited OR $4, updated_at = now()"
        "  WHERE email_id = $1 AND status = 'drafted' RETURNING *)"
        f" SELECT {_VIEW_COLUMNS} FROM e{_VIEW_JOINS}",
        email_id, draft.subject, draft.body, changed,
    )  # fmt: skip
    assert row is not None, "the campaign lock keeps the draft pending until now"
    return email_view(row)


async def decide_pending(
    conn: Connection, campaign_id: uuid.UUID, decision: Decision, reviewed_by: str
) -> list[EmailView]:
    """Decide every draft of the campaign still pending, as they are, follow-ups included; the
    first emails decided, by rank."""
    rows = await conn.fetch(
        "WITH e AS (UPDATE campaign.emails SET status = " + _DECIDED + ","  # noqa: S608
        "  reviewed_by = $3, reviewed_at = now(), updated_at = now()"
        "  WHERE campaign_id = $1 AND status = 'drafted' RETURNING *)"
        f" SELECT {_VIEW_COLUMNS} FROM e{_VIEW_JOINS}"
        " WHERE e.step = 0 ORDER BY r.rank, e.email_id",
        campaign_id,
        DECIDED_STATUS[decision],
        reviewed_by,
    )
    return [email_view(row) for row in rows]


async def emails_by_status(
    conn: Connection, campaign_id: uuid.UUID, *, follow_ups: bool = False
) -> StatusCounts:
    """How many of the campaign's first emails (one per recipient; with `follow_ups`, its
    follow-ups instead) are in each status, and how many of those have a `sent_at` (a bounced
    email was sent first)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS total, count(sent_at) AS stamped FROM campaign.emails"
        " WHERE campaign_id = $1 AND (step > 0) = $2 GROUP BY status",
        campaign_id,
        follow_ups,
    )
    return {row["status"]: (row["total"], row["stamped"]) for row in rows}


async def review_counts(conn: Connection, campaign_id: uuid.UUID) -> ReviewCounts:
    return review_counts_from(await emails_by_status(conn, campaign_id))


async def list_emails(
    conn: Connection,
    campaign_id: uuid.UUID,
    status: EmailStatus | None,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
) -> list[EmailView]:
    """Up to `limit` emails of the campaign, by recipient rank, after the cursor `after`, each
    with its candidate's profile: one query, whatever the page's size."""
    rows = await conn.fetch(
        f"SELECT {_VIEW_COLUMNS} FROM campaign.emails e{_VIEW_JOINS}"  # noqa: S608 - constant
        " WHERE e.campaign_id = $1 AND e.step = 0 AND ($2::text IS NULL OR e.status = $2)"
        "  AND ($3::int IS NULL OR (coalesce(r.rank, 0), e.email_id) > ($3, $4::uuid))"
        " ORDER BY coalesce(r.rank, 0), e.email_id LIMIT $5",
        campaign_id,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return await _with_follow_ups(conn, *(email_view(row) for row in rows))


_FOLLOW_UP_COLUMNS = (
    "email_id, candidate_id, step, wait_days, subject, body, status, edited,"
    " next_attempt_at AS due_at, sent_at,"
    " CASE WHEN status = 'stopped' THEN last_error END AS stopped_because"
)


async def _with_follow_ups(conn: Connection, *views: EmailView) -> list[EmailView]:
    """The first emails `views`, each with its recipient's follow-ups (one query for all)."""
    firsts = [view for view in views if view.step == 0]
    if not firsts:
        return list(views)
    rows = await conn.fetch(
        f"SELECT {_FOLLOW_UP_COLUMNS} FROM campaign.emails"  # noqa: S608 - constant
        " WHERE campaign_id = $1 AND candidate_id = ANY($2::uuid[]) AND step > 0"
        " ORDER BY candidate_id, step",
        firsts[0].campaign_id,
        [view.candidate_id for view in firsts],
    )
    steps: dict[uuid.UUID, list[FollowUpView]] = {}
    for row in rows:
        steps.setdefault(row["candidate_id"], []).append(FollowUpView.model_validate(dict(row)))
    return [
        view.model_copy(update={"follow_ups": steps.get(view.candidate_id, [])})
        if view.step == 0
        else view
        for view in views
    ]


async def end_unsent(
    conn: Connection,
    campaign_id: uuid.UUID,
    status: Literal["expired", "cancelled"],
    among: Sequence[EmailStatus],
) -> int:
    """The campaign's emails in one of the statuses `among` will never be sent: they become
    `status` (expired at the review deadline, cancelled with the campaign); how many did."""
    ended: int = await conn.fetchval(
        "WITH e AS (UPDATE campaign.emails SET status = $2, next_attempt_at = NULL,"
        "  updated_at = now() WHERE campaign_id = $1 AND status = ANY($3::text[]) RETURNING 1)"
        " SELECT count(*) FROM e",
        campaign_id,
        status,
        list(among),
    )
    return ended


# ---- Drafts ----------------------------------------------------------------------------------

# email id, campaign, job, candidate, address, subject, body, Message-ID, drafted by, step, and
# the working days it waits after the step before (None for a first email)
DraftRow = tuple[
    uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, str, str, str, str, str, int, int | None
]
_INSERT_DRAFT = (
    "INSERT INTO campaign.emails (email_id, campaign_id, job_id, candidate_id, to_address,"
    " subject, body, status, message_id, drafted_by, step, wait_days)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, 'drafted', $8, $9, $10, $11)"
    " ON CONFLICT (campaign_id, candidate_id, step) DO NOTHING"
)


async def insert_drafts(db: Database, rows: Sequence[DraftRow]) -> None:
    """Store drafts (see `DraftRow`); a recipient's step that has one already keeps it."""
    if len(rows) == 1:
        await db.execute(_INSERT_DRAFT, *rows[0])
    elif rows:
        await db.executemany(_INSERT_DRAFT, rows)


async def drafting_summary(db: Database, campaign_id: uuid.UUID) -> tuple[int, bool]:
    """How many drafts the campaign has, and whether the model wrote any of them."""
    row = await db.fetchrow(
        "SELECT count(*) AS drafted, coalesce(bool_or(drafted_by = 'model'), false) AS by_model"
        " FROM campaign.emails WHERE campaign_id = $1 AND step = 0",
        campaign_id,
    )
    assert row is not None
    return row["drafted"], row["by_model"]


# ---- The send queue --------------------------------------------------------------------------

# The campaign's row, share-locked for a claim unless it is cancelled or paused. Taken before the
# email's lock: a cancel locks the campaign, then ends its unsent emails, so every transaction
# that locks both takes the campaign first (the other order deadlocked with a cancel).
_SHARE_SENDING_CAMPAIGN = """
SELECT 1 FROM campaign.campaigns
WHERE campaign_id = $1 AND status <> 'cancelled' AND paused_at IS NULL
FOR SHARE
"""
# The campaign's next email due to be sent at $2 (the sender's clock), locked so that two senders
# never take the same one, with what pacing needs: the recipient's zone and city, and for a first
# email (step 0) the latest other campaign's first email to the same candidate within $3 days
# (0: none looked for), sent or being sent (the contact-frequency cap; follow-ups never count).
_NEXT_DUE = """
SELECT e.email_id, e.campaign_id, e.to_address, e.subject, e.body, e.message_id, e.attempts,
       e.step, e.in_reply_to,
       j.title AS job_title, c.found_via, s.reason AS suppressed_reason,
       c.timezone AS recipient_timezone, c.city AS recipient_city,
       (SELECT coalesce(oc.name, oc.campaign_id::text) FROM campaign.emails o
        JOIN campaign.campaigns oc ON oc.campaign_id = o.campaign_id
        WHERE $3::int > 0 AND e.step = 0 AND o.step = 0 AND o.candidate_id = e.candidate_id
          AND o.campaign_id <> e.campaign_id
          AND (o.status = 'sending' OR o.sent_at > $2::timestamptz - make_interval(days => $3))
        ORDER BY o.sent_at DESC NULLS FIRST LIMIT 1) AS contacted_by
FROM campaign.emails e
JOIN campaign.jobs j ON j.job_id = e.job_id
JOIN campaign.candidates c ON c.candidate_id = e.candidate_id
LEFT JOIN campaign.suppressions s ON s.email = lower(e.to_address)
WHERE e.campaign_id = $1 AND e.status = 'approved'
  AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= $2)
ORDER BY coalesce(e.next_attempt_at, e.reviewed_at, e.created_at), e.email_id
LIMIT $4
FOR UPDATE OF e SKIP LOCKED
"""
_DUE_CAMPAIGNS = """
SELECT DISTINCT e.campaign_id FROM campaign.emails e JOIN campaign.campaigns cp USING (campaign_id)
WHERE e.status = 'approved' AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= $1)
  AND cp.status <> 'cancelled' AND cp.paused_at IS NULL
LIMIT 500
"""
# The campaign's approved email that is due first, for "when does the next one go, and why not
# now" (the campaign view): no lock, nothing changed.
_FIRST_PENDING = """
SELECT e.email_id, e.next_attempt_at, e.last_error, e.attempts,
       c.timezone AS recipient_timezone, c.city AS recipient_city,
       cp.paused_at, cp.status AS campaign_status, cp.created_by
FROM campaign.emails e
JOIN campaign.campaigns cp ON cp.campaign_id = e.campaign_id
JOIN campaign.candidates c ON c.candidate_id = e.candidate_id
WHERE e.campaign_id = $1 AND e.status = 'approved'
ORDER BY coalesce(e.next_attempt_at, e.reviewed_at, e.created_at), e.email_id
LIMIT 1
"""
_SENT_OUT_CAMPAIGNS = """
SELECT cp.campaign_id FROM campaign.campaigns cp
WHERE cp.status = 'sending' AND NOT EXISTS (
    SELECT 1 FROM campaign.emails e
    WHERE e.campaign_id = cp.campaign_id AND e.status = ANY($1::text[]))
LIMIT 500
"""
# A swept email is never sent again, so the rest of its recipient's sequence stops with it, as
# after any failed send (sender._stop_after_failure); else a follow-up would wait forever.
_SWEEP_STUCK = """
WITH swept AS (
    UPDATE campaign.emails SET status = 'failed', last_error = $1, next_attempt_at = NULL,
        updated_at = now()
    WHERE status = 'sending' AND updated_at < now() - make_interval(secs => $2)
      AND NOT (email_id = ANY($3::uuid[]))
    RETURNING email_id, campaign_id, candidate_id, step
), stopped AS (
    UPDATE campaign.emails e SET status = 'stopped', last_error = $4, next_attempt_at = NULL,
        updated_at = now()
    FROM swept s
    WHERE e.campaign_id = s.campaign_id AND e.candidate_id = s.candidate_id AND e.step > s.step
      AND e.status = ANY($5::text[])
)
SELECT email_id FROM swept
"""


async def next_due(
    conn: Connection,
    campaign_id: uuid.UUID,
    now: datetime | None = None,
    frequency_days: int = 0,
) -> asyncpg.Record | None:
    """The campaign's next approved email due at `now`, locked (SKIP LOCKED: another sender's
    email is passed over), with its job title, source, suppression, recipient's zone and city,
    and `contacted_by` (another campaign that sent the candidate its first email within
    `frequency_days`, for a first email). None while the campaign is paused or cancelled: the
    campaign's row is share-locked, so a pause or cancel waits for claims under way and every
    later claim sees it (`handlers/steering.py`)."""
    rows = await due_batch(conn, campaign_id, now or datetime.now(UTC), frequency_days, 1)
    return rows[0] if rows else None


async def due_batch(
    conn: Connection, campaign_id: uuid.UUID, now: datetime, frequency_days: int, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` of the campaign's emails due at `now`, each as `next_due` gives it, locked;
    none while the campaign is paused or cancelled."""
    if await conn.fetchval(_SHARE_SENDING_CAMPAIGN, campaign_id) is None:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        _NEXT_DUE, campaign_id, now, frequency_days, limit
    )
    return rows


async def has_due(conn: Connection, campaign_id: uuid.UUID, now: datetime) -> bool:
    """Whether the campaign (not paused or cancelled) has an approved email due at `now`."""
    due: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign.emails e JOIN campaign.campaigns cp"
        "  USING (campaign_id) WHERE e.campaign_id = $1 AND e.status = 'approved'"
        "  AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= $2)"
        "  AND cp.status <> 'cancelled' AND cp.paused_at IS NULL)",
        campaign_id, now,
    )  # fmt: skip
    return due


async def defer(conn: Connection, email_id: uuid.UUID, until: datetime, reason: str) -> None:
    """Put a locked approved email off until `until` without counting an attempt (its
    recipient's sending window is closed); `reason` is kept as its last_error."""
    await conn.execute(
        "UPDATE campaign.emails SET next_attempt_at = $2, last_error = $3, updated_at = now()"
        " WHERE email_id = $1 AND status = 'approved'",
        email_id, until, reason,
    )  # fmt: skip


async def campaign_owner(conn: Database, campaign_id: uuid.UUID) -> str | None:
    """Who created the campaign (`created_by`): its emails go from their sender identity."""
    owner: str | None = await conn.fetchval(
        "SELECT created_by FROM campaign.campaigns WHERE campaign_id = $1", campaign_id
    )
    return owner


async def first_pending(conn: Connection, campaign_id: uuid.UUID) -> asyncpg.Record | None:
    """The campaign's approved email due first (due or not), with its recipient's zone and city
    and the campaign's pause, status and creator; None when none is left to send."""
    row: asyncpg.Record | None = await conn.fetchrow(_FIRST_PENDING, campaign_id)
    return row


async def claim(
    conn: Connection, claims: Sequence[tuple[uuid.UUID, str]]
) -> dict[uuid.UUID, asyncpg.Record]:
    """Mark locked emails 'sending' and count the attempt, in one statement: (email id, the
    Message-ID it gets unless it has one); each one's attempts and Message-ID, by id."""
    rows = await conn.fetch(
        "UPDATE campaign.emails e SET status = 'sending', attempts = attempts + 1,"
        " message_id = coalesce(e.message_id, c.message_id), last_error = NULL,"
        " updated_at = now() FROM unnest($1::uuid[], $2::text[]) AS c(email_id, message_id)"
        " WHERE e.email_id = c.email_id RETURNING e.email_id, e.attempts, e.message_id",
        [email_id for email_id, _ in claims],
        [message_id for _, message_id in claims],
    )
    assert len(rows) == len(claims), "the rows are locked by this transaction"
    return {row["email_id"]: row for row in rows}


async def unclaim(conn: Connection, email_ids: Sequence[uuid.UUID]) -> int:
    """Give back claimed emails that were never handed to the SMTP server (the sender is
    stopping): approved again, the attempt not counted; how many were."""
    if not email_ids:
        return 0
    result: str = await conn.execute(
        "UPDATE campaign.emails SET status = 'approved', attempts = attempts - 1,"
        " updated_at = now() WHERE email_id = ANY($1::uuid[]) AND status = 'sending'",
        list(email_ids),
    )
    return int(result.rsplit(" ", 1)[-1])


async def due_campaigns(conn: Connection, now: datetime | None = None) -> list[uuid.UUID]:
    """Campaigns with an approved email due at `now` (the sender's clock; not cancelled or
    paused ones)."""
    rows = await conn.fetch(_DUE_CAMPAIGNS, now or datetime.now(UTC))
    return [row["campaign_id"] for row in rows]


async def sent_out_campaigns(conn: Connection) -> list[uuid.UUID]:
    """Campaigns still 'sending' that have no email left to send."""
    rows = await conn.fetch(_SENT_OUT_CAMPAIGNS, list(OPEN_STATUSES))
    return [row["campaign_id"] for row in rows]


async def sweep_stuck(
    db: Database, error: str, after_seconds: float, spare: Sequence[uuid.UUID]
) -> int:
    """Fail emails left 'sending' for longer than `after_seconds`, except `spare` (being sent
    right now); how many were failed."""
    rows = await db.fetch(
        _SWEEP_STUCK, error, after_seconds, list(spare), "an earlier step was failed",
        list(STOPPABLE_STATUSES),
    )  # fmt: skip
    return len(rows)


async def store_outcome(
    conn: Connection,
    email_id: uuid.UUID,
    decision: SendDecision,
    *,
    from_sending: bool = False,
    unknown: str = "",
    now: datetime | None = None,
) -> bool:
    """Write a send decision on the email row. After a send (`from_sending`), only a 'sending'
    row, or one a sweep has just failed with `unknown` (the real outcome is better), is changed;
    otherwise only an 'approved' one. False if none was. `now` is the sender's clock (sent_at,
    and the retry time counts from it)."""
    now = now or datetime.now(UTC)
    result: str = await conn.execute(
        "UPDATE campaign.emails SET status = $2, last_error = $3, next_attempt_at = $4,"
        " sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END, updated_at = now()"
        " WHERE email_id = $1 AND CASE WHEN $6"
        "  THEN status = 'sending' OR (status = 'failed' AND last_error = $7)"
        "  ELSE status = 'approved' END",
        email_id, decision.status, decision.last_error, decision.next_attempt_at(now), now,
        from_sending, unknown,
    )  # fmt: skip
    return result.endswith(" 1")


async def others_open(conn: Connection, campaign_id: uuid.UUID, email_id: uuid.UUID | None) -> bool:
    """Whether an email of the campaign (other than `email_id`) is still to be sent."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign.emails WHERE campaign_id = $1"
        " AND status = ANY($2::text[]) AND email_id IS DISTINCT FROM $3)",
        campaign_id, list(OPEN_STATUSES), email_id,
    )  # fmt: skip
    return found


async def sending_counts(conn: Connection, campaign_id: uuid.UUID) -> SendingCounts:
    """The first emails' counts; `open` counts follow-ups still to be sent too."""
    follow_ups = await emails_by_status(conn, campaign_id, follow_ups=True)
    return sending_counts_from(await emails_by_status(conn, campaign_id), follow_ups)


# ---- Steering --------------------------------------------------------------------------------


async def in_flight(conn: Connection, campaign_ids: Sequence[uuid.UUID]) -> int:
    """Emails of these campaigns handed to the SMTP server and not yet recorded."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM campaign.emails"
        " WHERE campaign_id = ANY($1::uuid[]) AND status = 'sending'",
        list(campaign_ids),
    )
    return count
