"""The campaign service's FastStream app: answers its commands over Kafka (review, monitoring),
performs the email campaign's workflow steps, and sends approved email, reporting through its
outbox. Only wiring: the work is in `handlers/` and `sender.py`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker
from pydantic import BaseModel
from redis.asyncio import Redis

from services.campaign.handlers import privacy, search, steering
from services.campaign.handlers.actions import OWNER, make_worker
from services.campaign.handlers.monitoring import campaign_timeline, monitoring_commands
from services.campaign.handlers.ownership import team_scoped
from services.campaign.handlers.review import review_command_handlers
from services.campaign.handlers.runs import run_change_routes
from services.campaign.inbox import Inbox, ModelReplyClassifier
from services.campaign.mailer import Mailboxes
from services.campaign.model import InferenceModel
from services.campaign.repository import SCHEMA
from services.campaign.repository.delivery import MonitoringRepository
from services.campaign.send_policy import Pacing
from services.campaign.sender import Sender, approved_routes
from services.campaign.throttle import RedisThrottle
from shared.broker import ensure_topics
from shared.cache import create_redis
from shared.consuming import subscribe_events
from shared.contracts.campaign import (
    CampaignStatusCommand,
    CampaignTimelineCommand,
    CampaignView,
    EraseCandidateCommand,
    ExportCandidateCommand,
    GetCampaignCommand,
    ListCampaignsCommand,
    SearchCandidatesCommand,
    SteerCampaignCommand,
    StopAllSendingCommand,
)
from shared.errors import Refused
from shared.service import CommandHandler, Runtime, Started, build_app, with_pool
from shared.settings import Settings
from shared.topics import step_request_topic


@dataclass(frozen=True)
class Dependencies:
    """What startup builds: the sender needs the pool, and its shared limits Redis."""

    sender: Sender
    redis: Redis | None = None
    inbox: Inbox | None = None  # reads the sender mailbox when IMAP_HOST is set


async def build_dependencies(
    settings: Settings, runtime: Runtime, mailboxes: Mailboxes
) -> Dependencies:
    client = await create_redis(settings)
    throttle = RedisThrottle(client, rate_per_second=settings.send_rate_per_second)
    pacing = Pacing(settings, throttle, mailboxes=mailboxes)
    sender = Sender(runtime.db, settings, pacing=pacing)
    await sender.start()
    return Dependencies(sender=sender, redis=client, inbox=await _start_inbox(settings, runtime))


async def _start_inbox(settings: Settings, runtime: Runtime) -> Inbox | None:
    """The mailbox reader, polling, if IMAP_HOST is set; it asks a configured model too."""
    if not settings.imap_host:
        return None
    model = InferenceModel(lambda: runtime.client, settings)
    classifier = ModelReplyClassifier(model) if settings.llm_configured else None
    inbox = Inbox(runtime.db, settings, classifier=classifier)
    await inbox.start()
    return inbox


Build = Callable[[Settings, Runtime, Mailboxes], Awaitable[Dependencies]]


def create_app(settings: Settings, build: Build = build_dependencies) -> tuple[FastStream, Runtime]:
    started: Started[Dependencies] = Started()
    # The sender identities, read once: drafts, review edits and sends each use a campaign's.
    mailboxes = Mailboxes.from_settings(settings)
    # Drafts ask the inference service through this service's client, made by build_app below.
    worker = make_worker(settings, lambda: runtime.client, mailboxes)

    def register(broker: KafkaBroker, runtime: Runtime) -> None:
        provider = runtime.tracer_provider
        tracer = provider.get_tracer("campaign") if provider is not None else None
        # One consumer for the step requests, the approvals and the runs' changes (review
        # deadlines, cancelled runs): one consumer group to join.
        subscribe_events(
            broker,
            settings,
            group_id="campaign.events",
            routes={
                **worker.routes(lambda: runtime.db),
                **approved_routes(lambda: started.get().sender),
                **run_change_routes(lambda: runtime.db, _wake(started)),
            },
            tracer=tracer,
        )

    async def startup(runtime: Runtime) -> None:
        # The engine creates the topic too, but this service may start first.
        await ensure_topics(settings, [step_request_topic(OWNER)])
        started.set(await build(settings, runtime, mailboxes))

    async def shutdown(runtime: Runtime) -> None:
        if started.ready:
            deps = started.get()
            if deps.inbox is not None:
                await deps.inbox.stop()
            await deps.sender.stop()
            if deps.redis is not None:
                await deps.redis.aclose()

    # A step's completion leaves the outbox at its commit's NOTIFY: no settle delay. Only a
    # configured model is asked anything, so only then is there a reply topic.
    app, runtime = build_app(
        "campaign",
        settings,
        register,
        commands=team_scoped(
            {
                **review_command_handlers(settings, mailboxes),
                **monitoring_commands(settings),
                GetCampaignCommand: with_pool(partial(_campaign_view, started)),
                **_steering_commands(started),
                SearchCandidatesCommand: with_pool(
                    partial(search.search_candidates, settings=settings)
                ),
                CampaignTimelineCommand: with_pool(campaign_timeline),
                EraseCandidateCommand: with_pool(privacy.erase_candidate),
                ExportCandidateCommand: with_pool(privacy.export_candidate),
            }
        ),
        outbox_schema=SCHEMA,
        outbox_settle_seconds=0,
        startup=startup,
        shutdown=shutdown,
        asks_services=settings.llm_configured,
    )
    return app, runtime


async def _campaign_view(
    started: Started[Dependencies], pool: asyncpg.Pool, command: GetCampaignCommand
) -> CampaignView:
    """GET /api/campaigns/{id}: the view, with when the next email goes and why it waits."""
    next_send = started.get().sender.pacing.next_send if started.ready else None
    async with pool.acquire() as conn:
        view = await MonitoringRepository(conn, next_send).campaign(command.campaign_id)
    if view is None:
        raise Refused(f"campaign {command.campaign_id} does not exist", code="not_found")
    return view


def _wake(started: Started[Dependencies]) -> Callable[[uuid.UUID], None]:
    """Tell the sender a campaign's approved emails may be due now (after a resume)."""

    def wake(campaign_id: uuid.UUID) -> None:
        started.get().sender.approved(campaign_id)

    return wake


def _steering_commands(started: Started[Dependencies]) -> dict[type[BaseModel], CommandHandler]:
    wake = _wake(started)
    return {
        SteerCampaignCommand: with_pool(partial(steering.steer_campaign, wake=wake)),
        StopAllSendingCommand: with_pool(partial(steering.stop_all_sending, wake=wake)),
        ListCampaignsCommand: with_pool(steering.list_campaigns),
        CampaignStatusCommand: with_pool(steering.campaign_status),
    }
