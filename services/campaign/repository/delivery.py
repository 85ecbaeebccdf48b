"""Delivery events and the suppression list: what happened to each sent email (sent, bounced,
opened, clicked, unsubscribed, ...) and which addresses are never written to again. The sender
and the monitoring commands both write through `MonitoringRepository`, so an event is stored, and
announced on `email.delivery` through the outbox, the same way whoever saw it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from services.campaign.domain.monitoring import SuppressionReason
from services.campaign.domain.sequences import stops_sequence
from services.campaign.repository import SCHEMA, campaigns, sequences
from shared.contracts.campaign import CampaignView, DeliveryKind, EmailDeliveryEvent, NextSend
from shared.db import Connection
from shared.outbox import enqueue
from shared.topics import EMAIL_DELIVERY


@dataclass(frozen=True)
class EmailRef:
    """What monitoring needs to know about one email."""

    email_id: uuid.UUID
    campaign_id: uuid.UUID
    to_address: str
    message_id: str | None
    status: str
    body: str

    @property
    def address(self) -> str:
        """The address as the suppression list keeps it (lower-case)."""
        return self.to_address.strip().lower()

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> EmailRef:
        return cls(
            row["email_id"], row["campaign_id"], row["to_address"], row["message_id"],
            row["status"], row["body"],
        )  # fmt: skip


_EMAIL_COLUMNS = "email_id, campaign_id, to_address, message_id, status, body"
# When a campaign's next email goes and why it waits (`send_policy.Pacing.next_send`).
NextSendOf = Callable[[Connection, uuid.UUID], Awaitable[NextSend]]


class MonitoringStore(Protocol):
    """What the monitoring handlers need from storage: `MonitoringRepository`, or a fake."""

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None: ...

    async def email(self, email_id: uuid.UUID) -> EmailRef | None: ...

    async def emails(
        self, email_ids: list[uuid.UUID], message_ids: list[str]
    ) -> tuple[dict[uuid.UUID, EmailRef], dict[str, EmailRef]]: ...

    async def record(
        self,
        email: EmailRef,
        kind: DeliveryKind,
        event_id: uuid.UUID,
        detail: Mapping[str, Any],
        occurred_at: datetime | None = None,
    ) -> bool: ...

    async def suppress(self, email: EmailRef, reason: SuppressionReason, detail: str) -> bool: ...

    async def is_suppressed(self, address: str) -> bool: ...

    async def mark_bounced(self, email: EmailRef, reason: str) -> None: ...

    async def soft_bounces(self, address: str) -> int: ...


class MonitoringRepository:
    """Monitoring's reads and writes on the campaign schema; writes take the caller's connection,
    so a delivery event, its effects and its outbox event commit together."""

    def __init__(self, conn: Connection, next_send: NextSendOf | None = None) -> None:
        self.conn = conn
        self._next_send = next_send

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None:
        """The campaign's view, with when its next email goes and why it waits when this
        repository was given `next_send` (`send_policy.Pacing.next_send`)."""
        view = await campaigns.campaign_view(self.conn, campaign_id)
        if view is None or self._next_send is None:
            return view
        return view.model_copy(update={"next_send": await self._next_send(self.conn, campaign_id)})

    async def email(self, email_id: uuid.UUID) -> EmailRef | None:
        row = await self.conn.fetchrow(
            f"SELECT {_EMAIL_COLUMNS} FROM campaign.emails WHERE email_id = $1",  # noqa: S608
            email_id,
        )
        return EmailRef.from_row(row) if row is not None else None

    async def emails(
        self, email_ids: list[uuid.UUID], message_ids: list[str]
    ) -> tuple[dict[uuid.UUID, EmailRef], dict[str, EmailRef]]:
        """The emails named by id or Message-ID, each keyed the way it was asked for."""
        rows = await self.conn.fetch(
            f"SELECT {_EMAIL_COLUMNS} FROM campaign.emails"  # noqa: S608
            " WHERE email_id = ANY($1::uuid[]) OR message_id = ANY($2::text[])",
            email_ids,
            message_ids,
        )
        refs = [EmailRef.from_row(row) for row in rows]
        return (
            {ref.email_id: ref for ref in refs},
            {ref.message_id: ref for ref in refs if ref.message_id is not None},
        )

    async def record(
        self,
        email: EmailRef,
        kind: DeliveryKind,
        event_id: uuid.UUID,
        detail: Mapping[str, Any],
        occurred_at: datetime | None = None,
    ) -> bool:
        """Store a delivery event and announce it on `email.delivery`; False when an event with
        this id was stored before (nothing is written then)."""
        event = EmailDeliveryEvent(
            event_id=event_id,
            campaign_id=email.campaign_id,
            email_id=email.email_id,
            kind=kind,
            detail=dict(detail),
            **({"occurred_at": occurred_at} if occurred_at is not None else {}),
        )
        inserted = await self.conn.fetchval(
            "INSERT INTO campaign.delivery_events"
            " (event_id, email_id, campaign_id, kind, detail, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING true",
            event.event_id, email.email_id, email.campaign_id, kind,
            json.dumps(event.detail, default=str), event.occurred_at,
        )  # fmt: skip
        if not inserted:
            return False
        if stops_sequence(kind, event.detail):
            await sequences.stop_sequence(self.conn, email.email_id, f"the recipient {kind}")
        await enqueue(self.conn, SCHEMA, EMAIL_DELIVERY.name, str(email.campaign_id), event)
        return True

    async def suppress(self, email: EmailRef, reason: SuppressionReason, detail: str) -> bool:
        """Put the email's address on the suppression list; False if it was already there (the
        first reason stays)."""
        inserted = await self.conn.fetchval(
            "INSERT INTO campaign.suppressions (email, reason, campaign_id, detail)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING true",
            email.address, reason, email.campaign_id, detail,
        )  # fmt: skip
        return bool(inserted)

    async def is_suppressed(self, address: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM campaign.suppressions WHERE email = $1)",
                address.strip().lower(),
            )
        )

    async def mark_bounced(self, email: EmailRef, reason: str) -> None:
        """A sent email bounced for good; one not sent yet is left to the sender."""
        await self.conn.execute(
            "UPDATE campaign.emails SET status = 'bounced', last_error = $2, updated_at = now()"
            " WHERE email_id = $1 AND status IN ('sent', 'sending')",
            email.email_id, reason,
        )  # fmt: skip

    async def latest_sent_to(self, address: str, before: datetime) -> EmailRef | None:
        """The latest email sent to `address` (any case) no later than `before`, over every
        campaign: whom a reply from that address answers when it names none of our Message-IDs."""
        row = await self.conn.fetchrow(
            f"SELECT {_EMAIL_COLUMNS} FROM campaign.emails"  # noqa: S608
            " WHERE lower(to_address) = $1 AND sent_at IS NOT NULL AND sent_at <= $2"
            " ORDER BY sent_at DESC LIMIT 1",
            address.strip().lower(), before,
        )  # fmt: skip
        return EmailRef.from_row(row) if row is not None else None

    async def soft_bounces(self, address: str) -> int:
        """Soft bounces recorded for an address, over every campaign."""
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM campaign.delivery_events d JOIN campaign.emails e"
            " USING (email_id) WHERE d.kind = 'bounced' AND lower(e.to_address) = $1"
            " AND NOT coalesce(d.detail -> 'permanent' = 'true'::jsonb, false)",
            address.strip().lower(),
        )
        return count


async def first_events(
    conn: Connection, campaign_id: uuid.UUID, bucket: str
) -> list[tuple[datetime, str, int]]:
    """For the campaign's delivery events: per (bucket start, kind), how many emails had their
    first such event then, oldest first."""
    rows = await conn.fetch(
        "SELECT date_trunc($2, first_at) AS at, kind, count(*) AS emails FROM ("
        "  SELECT email_id, kind, min(occurred_at) AS first_at FROM campaign.delivery_events"
        "  WHERE campaign_id = $1 GROUP BY email_id, kind) f"
        " GROUP BY 1, 2 ORDER BY 1",
        campaign_id, bucket,
    )  # fmt: skip
    return [(row["at"], row["kind"], row["emails"]) for row in rows]


async def inbox_cursor(conn: Connection, mailbox: str, folder: str, uidvalidity: int) -> int:
    """The highest IMAP UID the mailbox reader processed in the folder under this UIDVALIDITY
    (0: none, or the folder was renumbered since)."""
    last: int | None = await conn.fetchval(
        "SELECT last_uid FROM campaign.inbox_cursors"
        " WHERE mailbox = $1 AND folder = $2 AND uidvalidity = $3",
        mailbox, folder, uidvalidity,
    )  # fmt: skip
    return last or 0


async def advance_inbox_cursor(
    conn: Connection, mailbox: str, folder: str, uidvalidity: int, uid: int
) -> None:
    """Remember that the reader processed `uid`; never moves back within one UIDVALIDITY (two
    service instances may read the same folder)."""
    await conn.execute(
        "INSERT INTO campaign.inbox_cursors (mailbox, folder, uidvalidity, last_uid)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (mailbox, folder) DO UPDATE SET"
        " last_uid = CASE WHEN inbox_cursors.uidvalidity = EXCLUDED.uidvalidity"
        "   THEN greatest(inbox_cursors.last_uid, EXCLUDED.last_uid) ELSE EXCLUDED.last_uid END,"
        " uidvalidity = EXCLUDED.uidvalidity, updated_at = now()",
        mailbox, folder, uidvalidity, uid,
    )  # fmt: skip
