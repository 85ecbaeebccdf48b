"""A recipient's follow-up sequence in the database: the next step released when one is sent,
and the rest stopped when the recipient answers, unsubscribes, bounces or complains, when a
person stops it, or when a step could not be sent. The rules are in `domain/sequences.py`.

Each function runs in its caller's transaction (the send's recording, a delivery event's)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from services.campaign.domain.sequences import STOPPABLE_STATUSES, add_working_days
from shared.db import Connection

# The recipient's other steps, found from one of their emails.
_SAME_RECIPIENT = (
    "campaign_id = (SELECT campaign_id FROM campaign.emails WHERE email_id = $1)"
    " AND candidate_id = (SELECT candidate_id FROM campaign.emails WHERE email_id = $1)"
)


async def release_next_steps(conn: Connection, sent: Sequence[uuid.UUID], sent_at: datetime) -> int:
    """For each email just sent, the recipient's next waiting step (a step a reviewer dropped
    is skipped) becomes due, `wait_days` working days later, replying to the thread's first
    Message-ID; how many were released (none without a sequence, or once it stopped). One
    query finds them for the whole batch, so emails without follow-ups cost no more."""
    if not sent:
        return 0
    rows = await conn.fetch(
        "SELECT DISTINCT ON (e.email_id) n.email_id, n.wait_days,"
        " coalesce(e.in_reply_to, e.message_id) AS thread"
        " FROM campaign.emails e JOIN campaign.emails n"
        "  ON n.campaign_id = e.campaign_id AND n.candidate_id = e.candidate_id"
        "  AND n.step > e.step"
        " WHERE e.email_id = ANY($1::uuid[]) AND n.status = 'waiting'"
        " ORDER BY e.email_id, n.step",
        list(sent),
    )
    released = 0
    for row in rows:
        due = add_working_days(sent_at, row["wait_days"] or 1)
        result: str = await conn.execute(
            "UPDATE campaign.emails SET status = 'approved', next_attempt_at = $2,"
            " in_reply_to = $3, updated_at = now() WHERE email_id = $1 AND status = 'waiting'",
            row["email_id"], due, row["thread"],
        )  # fmt: skip
        released += result.endswith(" 1")
    return released


async def stop_sequence(conn: Connection, email_id: uuid.UUID, reason: str) -> int:
    """Stop every follow-up of the email's recipient in its campaign that may still be sent;
    how many were stopped (0 when there was none, or it had stopped already)."""
    stopped: int = await conn.fetchval(
        "WITH s AS (UPDATE campaign.emails SET status = 'stopped', last_error = $2,"  # noqa: S608
        "  next_attempt_at = NULL, updated_at = now()"
        f" WHERE {_SAME_RECIPIENT} AND step > 0 AND status = ANY($3::text[]) RETURNING 1)"
        " SELECT count(*) FROM s",
        email_id, reason, list(STOPPABLE_STATUSES),
    )  # fmt: skip
    return stopped


async def stop_recipient(
    conn: Connection, campaign_id: uuid.UUID, email_id: uuid.UUID, reason: str
) -> int | None:
    """A person stops one recipient's sequence (any of their emails names it); None when the
    campaign has no such email."""
    found = await conn.fetchval(
        "SELECT 1 FROM campaign.emails WHERE email_id = $1 AND campaign_id = $2",
        email_id,
        campaign_id,
    )
    if found is None:
        return None
    return await stop_sequence(conn, email_id, reason)
