"""Campaign monitoring's rules, as plain functions: which links a redirect may follow, what an
inbound delivery event does (its dedupe id, the suppression it causes), and how a campaign's counts
are derived. `repository/delivery.py` stores the events; `handlers/monitoring.py` applies these."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from services.campaign.domain.status import APPROVED_STATUSES, count_of
from shared.contracts.campaign import CampaignCounts, DeliveryKind

Purpose = Literal["open", "click"]
SuppressionReason = Literal["unsubscribed", "hard_bounce", "complaint", "soft_bounce_limit"]
_EVENT_NAMESPACE = uuid.UUID("0b7f6a0e-3c55-4f3e-9a57-8d3c2f41b6d2")


# ---- Signed tracking tokens -----------------------------------------------------------------


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
    unsubscribe (or a reply asking not to be contacted again), a complaint, a hard bounce at
    once; soft bounces once `soft_bounces` (this one included) reach the limit."""
    if kind == "unsubscribed" or (kind == "replied" and asks_to_unsubscribe(detail)):
        return "unsubscribed"
    if kind == "complained":
        return "complaint"
    if is_hard_bounce(kind, detail):
        return "hard_bounce"
    if kind == "bounced" and soft_bounce_limit > 0 and soft_bounces >= soft_bounce_limit:
        return "soft_bounce_limit"
    return None


def asks_to_unsubscribe(detail: Mapping[str, Any]) -> bool:
    """A reply classified as a request not to be contacted again (`domain/replies.py`)."""
    return detail.get("classification") == "unsubscribe"


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
        return count_of(statuses, *names)

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
        cancelled=n("cancelled"),
        delivered=event_emails.get("delivered", 0),
        opened=event_emails.get("opened", 0),
        clicked=event_emails.get("clicked", 0),
        replied=event_emails.get("replied", 0),
        unsubscribed=event_emails.get("unsubscribed", 0),
        complained=event_emails.get("complained", 0),
    )


# ---- Repository ------------------------------------------------------------------------------
