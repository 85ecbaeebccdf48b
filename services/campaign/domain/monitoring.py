"""Campaign monitoring: the rules (signed tracking tokens, which links a redirect may follow, what
an inbound delivery event does, how counts are derived) as plain functions, and the asyncpg
repository that stores delivery events and suppressions and reads a campaign's counts."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

import asyncpg

from services.campaign.composing import make_email_token, verify_email_token
from shared.campaign_monitoring import (
    CampaignCounts,
    CampaignJob,
    CampaignView,
    DraftingProgress,
)
from shared.db import Connection
from shared.events import DeliveryKind, EmailDeliveryEvent
from shared.outbox import enqueue
from shared.settings import Settings
from shared.topics import EMAIL_DELIVERY

SCHEMA = "campaign"
Purpose = Literal["open", "click"]
SuppressionReason = Literal["unsubscribed", "hard_bounce", "complaint", "soft_bounce_limit"]
# Opens and clicks count only for emails that went out; a reviewer previewing a draft is no reader.
TRACKED_STATUSES = frozenset({"sent"})
# An email approved by a reviewer is in one of these states afterwards.
APPROVED_STATUSES = ("approved", "sending", "sent", "failed", "bounced")
_EVENT_NAMESPACE = uuid.UUID("0b7f6a0e-3c55-4f3e-9a57-8d3c2f41b6d2")


# ---- Signed tracking tokens -----------------------------------------------------------------


def make_tracking_token(purpose: Purpose, email_id: uuid.UUID, secret: str) -> str:
    """The email id and its MAC for `purpose` (the unsubscribe token's scheme, another purpose)."""
    return make_email_token(purpose, email_id, secret)


def verify_tracking_token(purpose: Purpose, token: str, secret: str) -> uuid.UUID | None:
    """The email id a `purpose` token was made for, or None."""
    return verify_email_token(purpose, token, secret)


@dataclass(frozen=True)
class TrackingLinks:
    """The public tracking URLs of one email (for HTML bodies: plain-text email has no pixel)."""

    base_url: str
    secret: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackingLinks:
        return cls(settings.public_base_url, settings.unsubscribe_secret.get_secret_value())

    def open_pixel(self, email_id: uuid.UUID) -> str:
        token = make_tracking_token("open", email_id, self.secret)
        return f"{self.base_url.rstrip('/')}/t/o/{token}.gif"

    def click(self, email_id: uuid.UUID, url: str) -> str:
        token = make_tracking_token("click", email_id, self.secret)
        return f"{self.base_url.rstrip('/')}/t/c/{token}?url={quote(url, safe='')}"


# ---- Which links a redirect may follow -------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""  # sentence punctuation after a link is not part of it


def links_in(body: str) -> list[str]:
    """The http(s) links a plain-text body contains, in order, without trailing punctuation."""
    return [match.group(0).rstrip(_TRAILING) for match in _URL.finditer(body)]


def redirect_allowed(url: str, body: str) -> bool:
    """True only for an http(s) URL that appears, character for character, as a link in the
    email: the redirect can never send a reader somewhere the email did not (no open redirect)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return False
    if any(ch.isspace() or ord(ch) < 32 or ch in "<>\"'`\\" for ch in url):
        return False
    return url in links_in(body)


# ---- Inbound events --------------------------------------------------------------------------


def dedupe_id(
    email_id: uuid.UUID, kind: DeliveryKind, detail: Mapping[str, Any], given: str | None
) -> uuid.UUID:
    """The delivery event's id, which `delivery_events.event_id` keeps unique. An email is
    opened and unsubscribed once, and a link clicked once, whoever reports it (pixel, link or
    webhook); other events are the provider's own (its event id), or new each time."""
    if kind in {"opened", "unsubscribed", "complained"}:
        return uuid.uuid5(_EVENT_NAMESPACE, f"{email_id}:{kind}")
    if kind == "clicked" and isinstance(detail.get("url"), str):
        return uuid.uuid5(_EVENT_NAMESPACE, f"{email_id}:clicked:{detail['url']}")
    if given is None:
        return uuid.uuid4()
    try:
        return uuid.UUID(given)
    except ValueError:
        return uuid.uuid5(_EVENT_NAMESPACE, f"provider:{given}")


def is_hard_bounce(kind: str, detail: Mapping[str, Any]) -> bool:
    return kind == "bounced" and detail.get("permanent") is True


def suppression_for(
    kind: str, detail: Mapping[str, Any], *, soft_bounces: int, soft_bounce_limit: int
) -> SuppressionReason | None:
    """Why an inbound event puts the address on the suppression list, if it does: an
    unsubscribe, a complaint, a hard bounce at once; soft bounces once `soft_bounces` (this one
    included) reach the limit."""
    if kind == "unsubscribed":
        return "unsubscribed"
    if kind == "complained":
        return "complaint"
    if is_hard_bounce(kind, detail):
        return "hard_bounce"
    if kind == "bounced" and soft_bounce_limit > 0 and soft_bounces >= soft_bounce_limit:
        return "soft_bounce_limit"
    return None


def normalise_message_id(message_id: str) -> str:
    """`<id@domain>` whether or not the provider kept the angle brackets."""
    bare = message_id.strip().strip("<>").strip()
    return f"<{bare}>"


def mask_address(address: str) -> str:
    """Enough of an address for its owner to recognise it, not enough to harvest it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


# ---- Counts ----------------------------------------------------------------------------------


def counts_from(
    statuses: Mapping[str, tuple[int, int]], event_emails: Mapping[str, int]
) -> CampaignCounts:
    """A campaign's counts from (emails, emails with `sent_at`) per email status and distinct
    emails per delivery-event kind. An email counts as sent once the relay accepted it: status
    `sent`, or a `sent_at` (a bounced email was sent first)."""

    def n(*names: str) -> int:
        return sum(statuses.get(name, (0, 0))[0] for name in names)

    sent = sum(
        total if status == "sent" else stamped for status, (total, stamped) in statuses.items()
    )
    return CampaignCounts(
        total=n(*statuses),
        drafted=n("drafted"),
        approved=n(*APPROVED_STATUSES),
        rejected=n("rejected"),
        expired=n("expired"),
        queued=n("approved", "sending"),
        sent=sent,
        failed=n("failed"),
        bounced=n("bounced"),
        delivered=event_emails.get("delivered", 0),
        opened=event_emails.get("opened", 0),
        clicked=event_emails.get("clicked", 0),
        replied=event_emails.get("replied", 0),
        unsubscribed=event_emails.get("unsubscribed", 0),
        complained=event_emails.get("complained", 0),
    )


# ---- Repository ------------------------------------------------------------------------------


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

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None:
        row = await self.conn.fetchrow(
            "SELECT c.campaign_id, c.name, c.status, c.generation_mode, c.created_by,"
            " c.created_at, c.updated_at, c.completed_at, j.job_id, j.title"
            " FROM campaign.campaigns c JOIN campaign.jobs j USING (job_id)"
            " WHERE c.campaign_id = $1",
            campaign_id,
        )
        if row is None:
            return None
        statuses = await self.conn.fetch(
            "SELECT status, count(*) AS total, count(sent_at) AS stamped FROM campaign.emails"
            " WHERE campaign_id = $1 GROUP BY status",
            campaign_id,
        )
        kinds = await self.conn.fetch(
            "SELECT kind, count(DISTINCT email_id) AS emails FROM campaign.delivery_events"
            " WHERE campaign_id = $1 GROUP BY kind",
            campaign_id,
        )
        counts = counts_from(
            {r["status"]: (r["total"], r["stamped"]) for r in statuses},
            {r["kind"]: r["emails"] for r in kinds},
        )
        recipients: int = await self.conn.fetchval(
            "SELECT count(*) FROM campaign.recipients WHERE campaign_id = $1", campaign_id
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
            drafting=DraftingProgress(generated=counts.total, total=recipients),
        )

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

    async def soft_bounces(self, address: str) -> int:
        """Soft bounces recorded for an address, over every campaign."""
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM campaign.delivery_events d JOIN campaign.emails e"
            " USING (email_id) WHERE d.kind = 'bounced' AND lower(e.to_address) = $1"
            " AND NOT coalesce(d.detail -> 'permanent' = 'true'::jsonb, false)",
            address.strip().lower(),
        )
        return count
