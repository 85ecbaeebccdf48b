"""A campaign's row: created by extraction, locked by every decision about it, and moved from
status to status only through `move_campaign`, which applies the state machine of
`domain.status`; its recipients; and the campaign as the API shows it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.campaign.domain.extraction import CandidateMatch
from services.campaign.domain.finding import CampaignRef
from services.campaign.domain.monitoring import counts_from
from services.campaign.domain.status import ENDED, sources
from services.campaign.domain.steering import MAY_SEND, Steering
from services.campaign.repository import emails
from shared.contracts.campaign import (
    CampaignJob,
    CampaignStatus,
    CampaignSummary,
    CampaignView,
    DraftingProgress,
    ListCampaignsCommand,
)
from shared.contracts.common import DEFAULT_TEAM
from shared.contracts.intent import Slots
from shared.db import Connection, Database
from shared.errors import Refused


async def create_campaign(
    conn: Connection,
    campaign_id: uuid.UUID,
    job_id: uuid.UUID,
    name: str,
    slots: Slots,
    *,
    created_by: str | None,
    correlation_id: str | None,
    follow_up_days: Sequence[int] = (),
    team: str = DEFAULT_TEAM,
) -> uuid.UUID:
    """Create the campaign (status 'generating') unless it exists; returns the job it is for,
    which for a campaign made earlier is the job it was made for then."""
    await conn.execute(
        "INSERT INTO campaign.campaigns"
        " (campaign_id, job_id, name, status, slots, created_by, correlation_id, follow_up_days,"
        "  team)"
        " VALUES ($1, $2, $3, 'generating', $4::jsonb, $5, $6, $7, $8)"
        " ON CONFLICT (campaign_id) DO NOTHING",
        campaign_id, job_id, name, slots.model_dump_json(), created_by, correlation_id,
        list(follow_up_days), team,
    )  # fmt: skip
    existing: uuid.UUID = await conn.fetchval(
        "SELECT job_id FROM campaign.campaigns WHERE campaign_id = $1", campaign_id
    )
    return existing


async def follow_up_days(db: Database, campaign_id: uuid.UUID) -> list[int]:
    """The campaign's follow-up waits in working days (empty: one email per recipient)."""
    days: list[int] | None = await db.fetchval(
        "SELECT follow_up_days FROM campaign.campaigns WHERE campaign_id = $1", campaign_id
    )
    return list(days or [])


@dataclass(frozen=True)
class LockedCampaign:
    """A campaign's row, locked for the caller's transaction."""

    status: CampaignStatus
    paused: bool
    correlation_id: str | None
    created_by: str | None = None  # its emails go from this user's sender identity
    team: str = DEFAULT_TEAM


async def lock_campaign(conn: Connection, campaign_id: uuid.UUID) -> LockedCampaign:
    """Lock the campaign's row for this transaction (waiting for sends being claimed, which
    share-lock it) and return what deciding about it needs; not_found if there is none."""
    row = await conn.fetchrow(
        "SELECT status, paused_at IS NOT NULL AS paused, correlation_id, created_by, team"
        " FROM campaign.campaigns WHERE campaign_id = $1 FOR UPDATE",
        campaign_id,
    )
    if row is None:
        raise Refused(f"no campaign {campaign_id}", code="not_found")
    return LockedCampaign(
        row["status"], row["paused"], row["correlation_id"], row["created_by"], row["team"]
    )


async def require_campaign(conn: Database, campaign_id: uuid.UUID, team: str | None = None) -> None:
    """not_found unless the campaign exists (and, when `team` is given, is that team's: another
    team's campaign is not found, so its id says nothing)."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign.campaigns"
        " WHERE campaign_id = $1 AND ($2::text IS NULL OR team = $2))",
        campaign_id,
        team,
    ):
        raise Refused(f"no campaign {campaign_id}", code="not_found")


async def move_campaign(
    conn: Database, campaign_id: uuid.UUID, target: CampaignStatus, **columns: Any
) -> bool:
    """Move the campaign to `target` if its status allows it (`domain.status.TRANSITIONS`), with
    `columns` set too; an end status also sets `completed_at`. False when the campaign is
    elsewhere (it moved on already, or never got there): nothing is written then."""
    names = list(columns)
    sets = "".join(f", {name} = ${n}" for n, name in enumerate(names, start=4))
    if target in ENDED:
        sets += ", completed_at = coalesce(completed_at, now())"
    result: str = await conn.execute(
        f"UPDATE campaign.campaigns SET status = $2, updated_at = now(){sets}"  # noqa: S608
        " WHERE campaign_id = $1 AND status = ANY($3::text[])",
        campaign_id,
        target,
        list(sources(target)),
        *columns.values(),
    )
    return result.endswith(" 1")


async def add_recipients(
    conn: Connection, campaign_id: uuid.UUID, ranked: Sequence[CandidateMatch]
) -> int:
    """Store the campaign's recipients, best first (ones stored before stay as they are);
    returns how many the campaign has now."""
    await conn.executemany(
        "INSERT INTO campaign.recipients (campaign_id, candidate_id, rank, matched_skills)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, candidate_id) DO NOTHING",
        [
            (campaign_id, m.candidate_id, rank, m.matched_skills)
            for rank, m in enumerate(ranked, start=1)
        ],
    )
    return await count_recipients(conn, campaign_id)


async def count_recipients(conn: Connection, campaign_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM campaign.recipients WHERE campaign_id = $1", campaign_id
    )
    return count


async def store_review_deadlines(
    db: Database, deadlines: Sequence[tuple[uuid.UUID, datetime]]
) -> None:
    """Record when each campaign's review ends (one UPDATE for all of them; a campaign not
    stored here is skipped, one with that deadline already is left alone)."""
    if not deadlines:
        return
    await db.execute(
        "UPDATE campaign.campaigns c SET review_deadline = d.deadline, updated_at = now()"
        " FROM unnest($1::uuid[], $2::timestamptz[]) AS d(campaign_id, deadline)"
        " WHERE c.campaign_id = d.campaign_id"
        "  AND c.review_deadline IS DISTINCT FROM d.deadline",
        [campaign_id for campaign_id, _ in deadlines],
        [deadline for _, deadline in deadlines],
    )


_SUMMARY_COLUMNS = (
    "c.campaign_id, c.campaign_id AS run_id, c.name, c.status, c.paused_at IS NOT NULL AS paused,"
    " c.paused_at, c.paused_by, c.ended_by, c.generation_mode, c.created_by, c.team, c.created_at,"
    " c.updated_at, c.completed_at, c.review_deadline AS review_deadline_at, j.job_id, j.title"
)


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    fields = dict(row)
    fields["job"] = CampaignJob(job_id=fields.pop("job_id"), title=fields.pop("title"))
    return fields


async def campaign_view(conn: Connection, campaign_id: uuid.UUID) -> CampaignView | None:
    """The campaign with its job, its counts by email status and delivery event, and how far
    drafting has come; None if there is no such campaign."""
    row = await conn.fetchrow(
        f"SELECT {_SUMMARY_COLUMNS} FROM campaign.campaigns c"  # noqa: S608 - constant
        " JOIN campaign.jobs j USING (job_id) WHERE c.campaign_id = $1",
        campaign_id,
    )
    if row is None:
        return None
    kinds = await conn.fetch(
        "SELECT kind, count(DISTINCT email_id) AS emails FROM campaign.delivery_events"
        " WHERE campaign_id = $1 GROUP BY kind",
        campaign_id,
    )
    counts = counts_from(
        await emails.emails_by_status(conn, campaign_id),
        {r["kind"]: r["emails"] for r in kinds},
    )
    recipients = await count_recipients(conn, campaign_id)
    return CampaignView(
        **_summary(row),
        counts=counts,
        drafting=DraftingProgress(generated=counts.total, total=recipients),
    )


async def list_campaigns(
    conn: Connection, command: ListCampaignsCommand, after: tuple[datetime, uuid.UUID] | None
) -> list[CampaignSummary]:
    """Up to `command.limit` campaigns matching its filters, newest first, after `after`."""
    rows = await conn.fetch(
        f"SELECT {_SUMMARY_COLUMNS} FROM campaign.campaigns c"  # noqa: S608 - constant
        " JOIN campaign.jobs j USING (job_id)"
        " WHERE ($1::text IS NULL OR c.status = $1)"
        "  AND ($2::text IS NULL OR c.created_by = $2)"
        "  AND ($3::uuid IS NULL OR c.job_id = $3)"
        "  AND ($4::timestamptz IS NULL OR c.created_at >= $4)"
        "  AND ($5::timestamptz IS NULL OR c.created_at < $5)"
        "  AND ($6::timestamptz IS NULL OR (c.created_at, c.campaign_id) < ($6, $7::uuid))"
        "  AND ($9::text IS NULL OR c.team = $9)"
        " ORDER BY c.created_at DESC, c.campaign_id DESC LIMIT $8",
        command.status, command.created_by, command.job_id, command.created_after,
        command.created_before, after[0] if after else None, after[1] if after else None,
        command.limit, command.team,
    )  # fmt: skip
    return [CampaignSummary.model_validate(_summary(row)) for row in rows]


# ---- Steering --------------------------------------------------------------------------------


async def apply_steering(
    conn: Connection, campaign_id: uuid.UUID, steering: Steering, by: str | None
) -> None:
    """Store a pause, resume, cancel or close (the caller holds the row's lock)."""
    if steering.status is not None:
        await move_campaign(
            conn, campaign_id, steering.status, ended_by=by, paused_at=None, paused_by=None,
            paused_by_stop=False,
        )  # fmt: skip
    elif steering.paused:
        await conn.execute(
            "UPDATE campaign.campaigns SET paused_at = now(), paused_by = $2, updated_at = now()"
            " WHERE campaign_id = $1",
            campaign_id, by,
        )  # fmt: skip
    else:
        await conn.execute(
            "UPDATE campaign.campaigns SET paused_at = NULL, paused_by = NULL,"
            " paused_by_stop = false, updated_at = now() WHERE campaign_id = $1",
            campaign_id,
        )


async def stop_all(conn: Connection, by: str | None) -> list[uuid.UUID]:
    """The emergency stop: pause every campaign that may still send and is not paused."""
    rows = await conn.fetch(
        "UPDATE campaign.campaigns SET paused_at = now(), paused_by = $2, paused_by_stop = true,"
        " updated_at = now() WHERE status = ANY($1::text[]) AND paused_at IS NULL"
        " RETURNING campaign_id",
        sorted(MAY_SEND), by,
    )  # fmt: skip
    return [row["campaign_id"] for row in rows]


async def resume_stopped(conn: Connection) -> list[uuid.UUID]:
    """Resume the campaigns the emergency stop paused (not those a person paused)."""
    rows = await conn.fetch(
        "UPDATE campaign.campaigns SET paused_at = NULL, paused_by = NULL, paused_by_stop = false,"
        " updated_at = now() WHERE paused_by_stop RETURNING campaign_id"
    )
    return [row["campaign_id"] for row in rows]


async def campaign_refs(
    conn: Connection, created_by: str | None, team: str | None = None
) -> list[CampaignRef]:
    """What finding a campaign needs about someone's campaigns (everyone's for None) of `team`
    (every team's for None), newest first, the latest 500."""
    rows = await conn.fetch(
        "SELECT c.campaign_id, c.name, j.title, j.city, c.slots ->> 'location' AS searched,"
        " coalesce(ARRAY(SELECT jsonb_array_elements_text(c.slots -> 'skills')), '{}') AS skills,"
        " c.created_at FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
        " WHERE ($1::text IS NULL OR c.created_by = $1) AND ($2::text IS NULL OR c.team = $2)"
        " ORDER BY c.created_at DESC, c.campaign_id DESC LIMIT 500",
        created_by,
        team,
    )
    return [
        CampaignRef(
            r["campaign_id"],
            r["name"],
            r["title"],
            r["city"],
            r["searched"],
            tuple(r["skills"]),
            r["created_at"],
        )
        for r in rows
    ]
