"""A campaign's row: created by extraction, locked by every decision about it, and moved from
status to status only through `move_campaign`, which applies the state machine of
`domain.status`; its recipients; and the campaign as the API shows it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.campaign.domain.extraction import CandidateMatch
from services.campaign.domain.monitoring import counts_from
from services.campaign.domain.status import ENDED, sources
from services.campaign.repository import emails
from shared.campaign_monitoring import CampaignJob, CampaignStatus, CampaignView, DraftingProgress
from shared.db import Connection, Database
from shared.errors import Refused
from shared.events import Slots


async def create_campaign(
    conn: Connection,
    campaign_id: uuid.UUID,
    job_id: uuid.UUID,
    name: str,
    slots: Slots,
    *,
    created_by: str | None,
    correlation_id: str | None,
) -> uuid.UUID:
    """Create the campaign (status 'generating') unless it exists; returns the job it is for,
    which for a campaign made earlier is the job it was made for then."""
    await conn.execute(
        "INSERT INTO campaign.campaigns"
        " (campaign_id, job_id, name, status, slots, created_by, correlation_id)"
        " VALUES ($1, $2, $3, 'generating', $4::jsonb, $5, $6)"
        " ON CONFLICT (campaign_id) DO NOTHING",
        campaign_id, job_id, name, slots.model_dump_json(), created_by, correlation_id,
    )  # fmt: skip
    existing: uuid.UUID = await conn.fetchval(
        "SELECT job_id FROM campaign.campaigns WHERE campaign_id = $1", campaign_id
    )
    return existing


async def lock_campaign(conn: Connection, campaign_id: uuid.UUID) -> CampaignStatus:
    """Lock the campaign's row for this transaction and return its status; not_found if none."""
    status: CampaignStatus | None = await conn.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1 FOR UPDATE", campaign_id
    )
    if status is None:
        raise Refused(f"no campaign {campaign_id}", code="not_found")
    return status


async def lock_for_update(conn: Connection, campaign_id: uuid.UUID) -> asyncpg.Record | None:
    """The campaign's status and correlation id, its row locked for this transaction; None if
    there is no such campaign."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT status, correlation_id FROM campaign.campaigns WHERE campaign_id = $1 FOR UPDATE",
        campaign_id,
    )
    return row


async def require_campaign(conn: Connection, campaign_id: uuid.UUID) -> None:
    """not_found unless the campaign exists."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign.campaigns WHERE campaign_id = $1)", campaign_id
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


async def campaign_view(conn: Connection, campaign_id: uuid.UUID) -> CampaignView | None:
    """The campaign with its job, its counts by email status and delivery event, and how far
    drafting has come; None if there is no such campaign."""
    row = await conn.fetchrow(
        "SELECT c.campaign_id, c.name, c.status, c.generation_mode, c.created_by,"
        " c.created_at, c.updated_at, c.completed_at, j.job_id, j.title"
        " FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
        " WHERE c.campaign_id = $1",
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
    return CampaignView(
        campaign_id=row["campaign_id"],
        name=row["name"],
        status=row["status"],
        job=CampaignJob(job_id=row["job_id"], title=row["title"]),
        generation_mode=row["generation_mode"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        counts=counts,
        drafting=DraftingProgress(
            generated=counts.total, total=await count_recipients(conn, campaign_id)
        ),
    )
