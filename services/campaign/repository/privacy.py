"""Erasing one candidate's personal data from every campaign table, in one transaction, and
reading everything held about them for an export. What counts as personal, and the hash kept of an
erased address, are `domain/privacy.py`'s rules."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.campaign.domain.privacy import (
    ERASED_CANDIDATE_COLUMNS,
    ERASED_ERROR,
    ERASED_NAME,
    ERASED_TEXT,
    KEPT_EVENT_DETAIL_KEYS,
    address_hash,
    pseudonym_address,
)
from shared.db import Connection

# Emails not sent yet and not decided against: an erasure cancels them.
UNSENT_STATUSES = ("drafted", "approved", "waiting")


@dataclass(frozen=True)
class Erasure:
    erased_at: datetime
    already_erased: bool = False
    emails_cancelled: int = 0
    emails_erased: int = 0


async def erase_candidate(conn: Connection, candidate_id: uuid.UUID) -> Erasure | None:
    """Erase the candidate (None if there is no such candidate). Their row, emails and
    recipient rows stay, pseudonymised, so the campaigns' counts and statuses stay right."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT email, erased_at FROM campaign.candidates WHERE candidate_id = $1 FOR UPDATE",
            candidate_id,
        )
        if row is None:
            return None
        if row["erased_at"] is not None:
            return Erasure(erased_at=row["erased_at"], already_erased=True)
        sent_to = await conn.fetch(
            "SELECT DISTINCT to_address FROM campaign.emails WHERE candidate_id = $1", candidate_id
        )
        addresses = sorted({row["email"], *(r["to_address"] for r in sent_to)})
        await _forget_addresses(conn, addresses)
        cancelled = await _cancel_unsent(conn, candidate_id)
        erased = await _erase_emails(conn, candidate_id)
        await conn.execute(
            "UPDATE campaign.recipients SET matched_skills = '{}' WHERE candidate_id = $1",
            candidate_id,
        )
        erased_at: datetime = await _erase_profile(conn, candidate_id)
    return Erasure(erased_at=erased_at, emails_cancelled=cancelled, emails_erased=erased)


async def _forget_addresses(conn: Connection, addresses: list[str]) -> None:
    """Keep each address's hash, so it is never contacted again, and drop it from the
    suppression list, which holds it in plain text (the hash now does more than the suppression
    did: it also keeps the address out of imports and searches)."""
    await conn.execute(
        "INSERT INTO campaign.erased_addresses (address_hash) SELECT unnest($1::text[])"
        " ON CONFLICT (address_hash) DO NOTHING",
        sorted({address_hash(a) for a in addresses}),
    )
    await conn.execute(
        "DELETE FROM campaign.suppressions"
        " WHERE email IN (SELECT lower(a) FROM unnest($1::text[]) AS u(a))",
        addresses,
    )


async def _cancel_unsent(conn: Connection, candidate_id: uuid.UUID) -> int:
    """Cancel the emails to them that have not left yet. One being sent right now (`sending`)
    is the sender's: it is recorded as usual, then erased like the others."""
    status = await conn.execute(
        "UPDATE campaign.emails SET status = 'cancelled', last_error = $2,"
        " next_attempt_at = NULL, updated_at = now()"
        " WHERE candidate_id = $1 AND status = ANY($3::text[])",
        candidate_id,
        ERASED_ERROR,
        list(UNSENT_STATUSES),
    )
    return int(status.split()[-1])


async def _erase_emails(conn: Connection, candidate_id: uuid.UUID) -> int:
    """Every email to them loses its address, subject, body and error text (an SMTP error often
    quotes the address); their delivery events keep only the detail that says what happened,
    and so do the events still waiting in the outbox."""
    await conn.execute(
        "UPDATE campaign.email_revisions SET subject = $2, body = $2 WHERE email_id IN"
        " (SELECT email_id FROM campaign.emails WHERE candidate_id = $1)",
        candidate_id,
        ERASED_TEXT,
    )
    status = await conn.execute(
        "UPDATE campaign.emails SET to_address = $2, subject = $3, body = $3,"
        " last_error = CASE WHEN last_error IS NULL OR last_error = $4 THEN last_error"
        " ELSE $3 END, updated_at = now() WHERE candidate_id = $1",
        candidate_id,
        pseudonym_address(candidate_id),
        ERASED_TEXT,
        ERASED_ERROR,
    )
    kept = list(KEPT_EVENT_DETAIL_KEYS)
    await conn.execute(
        "UPDATE campaign.delivery_events d SET detail = coalesce((SELECT jsonb_object_agg(k, v)"
        " FROM jsonb_each(d.detail) AS x(k, v) WHERE k = ANY($2::text[])), '{}'::jsonb)"
        " || '{\"erased\": true}'::jsonb"
        " WHERE d.email_id IN (SELECT email_id FROM campaign.emails WHERE candidate_id = $1)",
        candidate_id,
        kept,
    )
    await conn.execute(
        "UPDATE campaign.outbox o SET payload = jsonb_set(o.payload, '{detail}',"
        " coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(o.payload -> 'detail')"
        " AS x(k, v) WHERE k = ANY($2::text[])), '{}'::jsonb))"
        " WHERE jsonb_typeof(o.payload -> 'detail') = 'object' AND o.payload ->> 'email_id' IN"
        " (SELECT email_id::text FROM campaign.emails WHERE candidate_id = $1)",
        candidate_id,
        kept,
    )
    return int(status.split()[-1])


async def _erase_profile(conn: Connection, candidate_id: uuid.UUID) -> datetime:
    cleared = ", ".join(f"{column} = NULL" for column in ERASED_CANDIDATE_COLUMNS)
    erased_at: datetime = await conn.fetchval(
        f"UPDATE campaign.candidates SET full_name = $2, email = $3, skills = '{{}}', {cleared},"  # noqa: S608
        " erased_at = now(), updated_at = now() WHERE candidate_id = $1 RETURNING erased_at",
        candidate_id,
        ERASED_NAME,
        pseudonym_address(candidate_id),
    )
    return erased_at


# ---- Export ------------------------------------------------------------------------------------


@dataclass
class Held:
    """Everything the campaign tables hold about one candidate (rows as dicts)."""

    profile: dict[str, Any]
    address_erased: bool
    suppression: dict[str, Any] | None
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    delivery_events: list[dict[str, Any]] = field(default_factory=list)


async def held_about(conn: Connection, candidate_id: uuid.UUID) -> Held | None:
    """What is held about the candidate, or None if there is no such candidate."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            "SELECT * FROM campaign.candidates WHERE candidate_id = $1", candidate_id
        )
        if row is None:
            return None
        profile = dict(row)
        erased = profile["erased_at"] is not None or await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM campaign.erased_addresses"
            " WHERE address_hash = campaign.address_hash($1))",
            profile["email"],
        )
        suppression = await conn.fetchrow(
            "SELECT reason, detail, created_at FROM campaign.suppressions WHERE email = lower($1)",
            profile["email"],
        )
        campaigns = await conn.fetch(
            "SELECT c.campaign_id, c.name, j.title AS job_title, c.status, c.created_at, r.rank,"
            " coalesce(r.matched_skills, '{}') AS matched_skills"
            " FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
            " LEFT JOIN campaign.recipients r"
            "  ON r.campaign_id = c.campaign_id AND r.candidate_id = $1"
            " WHERE c.campaign_id IN (SELECT campaign_id FROM campaign.recipients"
            "  WHERE candidate_id = $1 UNION SELECT campaign_id FROM campaign.emails"
            "  WHERE candidate_id = $1) ORDER BY c.created_at, c.campaign_id",
            candidate_id,
        )
        emails = await conn.fetch(
            "SELECT email_id, campaign_id, to_address, subject, body, status, created_at,"
            " sent_at FROM campaign.emails WHERE candidate_id = $1"
            " ORDER BY created_at, email_id",
            candidate_id,
        )
        revisions = await conn.fetch(
            "SELECT r.email_id, r.revision, r.subject, r.body, r.edited_by, r.edited_at"
            " FROM campaign.email_revisions r JOIN campaign.emails e USING (email_id)"
            " WHERE e.candidate_id = $1 ORDER BY r.email_id, r.revision",
            candidate_id,
        )
        events = await conn.fetch(
            "SELECT d.email_id, d.kind, d.detail, d.occurred_at FROM campaign.delivery_events d"
            " JOIN campaign.emails e USING (email_id) WHERE e.candidate_id = $1"
            " ORDER BY d.occurred_at, d.id",
            candidate_id,
        )
    return Held(
        profile=profile,
        address_erased=bool(erased),
        suppression=dict(suppression) if suppression else None,
        campaigns=[dict(r) for r in campaigns],
        emails=[
            {**dict(r), "revisions": [dict(v) for v in revisions if v["email_id"] == r["email_id"]]}
            for r in emails
        ],
        delivery_events=[_with_detail(r) for r in events],
    )


def _with_detail(row: asyncpg.Record) -> dict[str, Any]:
    """A delivery event's row with its jsonb detail decoded (asyncpg returns jsonb as text)."""
    event = dict(row)
    event["detail"] = json.loads(event["detail"]) if event["detail"] else {}
    return event
