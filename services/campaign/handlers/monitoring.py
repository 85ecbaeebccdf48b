"""The campaign service's monitoring commands: one handler per command, each given a repository
on a connection (a transaction for writes); `monitoring_commands` adapts them to `build_app`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from services.campaign.domain.links import verify_tracking_token, verify_unsubscribe_token
from services.campaign.domain.monitoring import (
    dedupe_id,
    is_hard_bounce,
    links_in,
    mask_address,
    normalise_message_id,
    redirect_allowed,
    suppression_for,
)
from services.campaign.domain.status import TRACKED_STATUSES
from services.campaign.domain.timeline import choose_bucket, cumulative
from services.campaign.repository import campaigns, delivery
from services.campaign.repository.delivery import EmailRef, MonitoringRepository, MonitoringStore
from shared.contracts.campaign import (
    CampaignTimeline,
    CampaignTimelineCommand,
    ClickTarget,
    GetCampaignCommand,
    InboundResult,
    PreviewUnsubscribeCommand,
    RecordEmailEventsCommand,
    RejectedEvent,
    TimelinePoint,
    TrackClickCommand,
    TrackOpenCommand,
    UnsubscribeCommand,
    UnsubscribeView,
)
from shared.contracts.common import Reply
from shared.errors import Refused
from shared.service import CommandContext, CommandHandler
from shared.settings import Settings

C = TypeVar("C", bound=BaseModel)
INVALID_LINK = "this link is not valid (it may have been altered or cut short)"


async def get_campaign(repo: MonitoringStore, campaign_id: uuid.UUID) -> dict[str, Any]:
    view = await repo.campaign(campaign_id)
    if view is None:
        raise Refused(f"campaign {campaign_id} does not exist", code="not_found")
    return view.model_dump(mode="json")


async def track_open(repo: MonitoringStore, token: str, secret: str) -> dict[str, Any]:
    """Record an email's first open; later opens, unsent emails and bad tokens change nothing
    (the gateway answers the same pixel whatever happens)."""
    email = await _tracked_email(repo, verify_tracking_token("open", token, secret))
    recorded = False
    if email.status in TRACKED_STATUSES:
        recorded = await repo.record(
            email, "opened", dedupe_id(email.email_id, "opened", {}, None), {}
        )
    return {"recorded": recorded}


async def track_click(repo: MonitoringStore, token: str, url: str, secret: str) -> dict[str, Any]:
    """The URL to redirect to, if the email the token names contains that exact link; each
    link's first click of a sent email is recorded."""
    email = await _tracked_email(repo, verify_tracking_token("click", token, secret))
    if not redirect_allowed(url, email.body):
        count = len(set(links_in(email.body)))
        raise Refused(
            f"this email does not contain the link {url[:200]!r} (it has {count} links); "
            "only links the email contains are followed",
            code="invalid_input",
        )
    recorded = False
    if email.status in TRACKED_STATUSES:
        detail = {"url": url}
        event_id = dedupe_id(email.email_id, "clicked", detail, None)
        recorded = await repo.record(email, "clicked", event_id, detail)
    return ClickTarget(url=url, recorded=recorded).model_dump()


async def preview_unsubscribe(repo: MonitoringStore, token: str, secret: str) -> dict[str, Any]:
    email = await _unsubscribe_email(repo, token, secret)
    suppressed = await repo.is_suppressed(email.address)
    return UnsubscribeView(
        address_hint=mask_address(email.address), unsubscribed=suppressed
    ).model_dump()


async def unsubscribe(
    repo: MonitoringStore, token: str, one_click: bool, secret: str
) -> dict[str, Any]:
    """Suppress the address for every later campaign and record the email's unsubscribe; doing
    it again changes nothing."""
    email = await _unsubscribe_email(repo, token, secret)
    via = "one_click" if one_click else "link"
    await repo.suppress(email, "unsubscribed", f"unsubscribe {via}")
    detail = {"via": via}
    await repo.record(
        email, "unsubscribed", dedupe_id(email.email_id, "unsubscribed", detail, None), detail
    )
    return UnsubscribeView(address_hint=mask_address(email.address), unsubscribed=True).model_dump()


async def record_email_events(
    repo: MonitoringStore, command: RecordEmailEventsCommand, soft_bounce_limit: int
) -> dict[str, Any]:
    """Record each inbound event once (by event id) and apply what it means: a hard bounce marks
    the email bounced and suppresses the address, a complaint or unsubscribe suppresses it, soft
    bounces suppress it at the limit. An event naming no known email is rejected, the rest kept."""
    by_id, by_message_id = await repo.emails(
        [e.email_id for e in command.events if e.email_id is not None],
        [normalise_message_id(e.message_id) for e in command.events if e.message_id is not None],
    )
    accepted, duplicates, rejected = 0, 0, []
    for index, event in enumerate(command.events):
        email = (
            by_id.get(event.email_id)
            if event.email_id is not None
            else by_message_id.get(normalise_message_id(event.message_id or ""))
        )
        if email is None:
            named = event.email_id or event.message_id
            rejected.append(RejectedEvent(index=index, reason=f"unknown email {named}"))
            continue
        event_id = dedupe_id(email.email_id, event.kind, event.detail, event.event_id)
        if not await repo.record(email, event.kind, event_id, event.detail, event.occurred_at):
            duplicates += 1
            continue
        accepted += 1
        if is_hard_bounce(event.kind, event.detail):
            await repo.mark_bounced(email, f"bounced: {event.detail.get('reason', 'permanent')}")
        soft = 0
        if event.kind == "bounced" and not is_hard_bounce(event.kind, event.detail):
            soft = await repo.soft_bounces(email.address)
        reason = suppression_for(
            event.kind, event.detail, soft_bounces=soft, soft_bounce_limit=soft_bounce_limit
        )
        if reason is not None:
            source = event.detail.get("via", "webhook")
            await repo.suppress(email, reason, f"{event.kind} reported by {source}")
    return InboundResult(accepted=accepted, duplicates=duplicates, rejected=rejected).model_dump()


async def _tracked_email(repo: MonitoringStore, email_id: uuid.UUID | None) -> EmailRef:
    email = await repo.email(email_id) if email_id is not None else None
    if email is None:
        raise Refused(INVALID_LINK, code="not_found")
    return email


async def _unsubscribe_email(repo: MonitoringStore, token: str, secret: str) -> EmailRef:
    email_id = verify_unsubscribe_token(token, secret)
    email = await repo.email(email_id) if email_id is not None else None
    if email is None:
        raise Refused("this unsubscribe link is not valid", code="not_found")
    return email


# ---- Adapting the handlers to build_app ------------------------------------------------------


def monitoring_commands(settings: Settings) -> dict[type[BaseModel], CommandHandler]:
    """The monitoring command handlers, for `build_app(commands=...)`."""
    secret = settings.unsubscribe_secret.get_secret_value()
    soft_limit = settings.soft_bounce_limit

    handlers: dict[type[BaseModel], CommandHandler] = {
        GetCampaignCommand: _reading(
            GetCampaignCommand, lambda repo, c: get_campaign(repo, c.campaign_id)
        ),
        PreviewUnsubscribeCommand: _reading(
            PreviewUnsubscribeCommand, lambda repo, c: preview_unsubscribe(repo, c.token, secret)
        ),
        TrackOpenCommand: _writing(
            TrackOpenCommand, lambda repo, c: track_open(repo, c.token, secret)
        ),
        TrackClickCommand: _writing(
            TrackClickCommand, lambda repo, c: track_click(repo, c.token, c.url, secret)
        ),
        UnsubscribeCommand: _writing(
            UnsubscribeCommand, lambda repo, c: unsubscribe(repo, c.token, c.one_click, secret)
        ),
        RecordEmailEventsCommand: _writing(
            RecordEmailEventsCommand, lambda repo, c: record_email_events(repo, c, soft_limit)
        ),
    }
    return handlers


Work = Callable[[MonitoringRepository, C], Awaitable[dict[str, Any]]]


def _reading(kind: type[C], work: Work[C]) -> CommandHandler:
    return _adapt(kind, work, transaction=False)


def _writing(kind: type[C], work: Work[C]) -> CommandHandler:
    return _adapt(kind, work, transaction=True)


def _adapt(kind: type[C], work: Work[C], *, transaction: bool) -> CommandHandler:
    async def handle(command: C, context: CommandContext) -> Reply:
        assert isinstance(command, kind)
        async with context.runtime.db.acquire() as conn:
            repo = MonitoringRepository(conn)
            if transaction:
                async with conn.transaction():
                    data = await work(repo, command)
            else:
                data = await work(repo, command)
        return Reply(ok=True, data=data)

    return handle


async def campaign_timeline(
    pool: asyncpg.Pool, command: CampaignTimelineCommand
) -> CampaignTimeline:
    """The campaign's funnel over time (`domain/timeline.py`); not_found for no campaign."""
    async with pool.acquire() as conn:
        await campaigns.require_campaign(conn, command.campaign_id)
        firsts = await delivery.first_events(conn, command.campaign_id, "hour")
    now = datetime.now(UTC)
    bucket = choose_bucket(firsts[0][0] if firsts else now, now, command.bucket)
    points = [
        TimelinePoint(at=point.at, **point.counts)
        for point in cumulative(firsts, bucket, until=now)
    ]
    return CampaignTimeline(campaign_id=command.campaign_id, bucket=bucket, points=points)
