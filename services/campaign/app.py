"""The campaign service's FastStream app: answers its commands over Kafka and performs the email
campaign's workflow steps, reporting them through its outbox."""

from __future__ import annotations

from faststream import FastStream
from faststream.kafka import KafkaBroker

from services.campaign.actions import OWNER, SCHEMA, make_worker
from services.campaign.monitoring_commands import monitoring_commands
from services.campaign.review_commands import review_command_handlers
from services.campaign.sender import Sender, approved_routes
from shared.broker import ensure_topics
from shared.consuming import subscribe_events
from shared.service import Runtime, build_app
from shared.settings import Settings
from shared.topics import step_request_topic


def create_app(settings: Settings) -> tuple[FastStream, Runtime]:
    # Drafts ask the inference service through this service's client, made by build_app below.
    worker = make_worker(settings, lambda: runtime.client)
    senders: list[Sender] = []  # made in startup: it needs the pool

    def register(broker: KafkaBroker, runtime: Runtime) -> None:
        provider = runtime.tracer_provider
        tracer = provider.get_tracer("campaign") if provider is not None else None
        # One consumer for the step requests and the approvals: one consumer group to join.
        subscribe_events(
            broker,
            settings,
            group_id="campaign.events",
            routes={
                **worker.routes(lambda: runtime.db),
                **approved_routes(lambda: senders[0]),
            },
            tracer=tracer,
        )

    async def startup(runtime: Runtime) -> None:
        # The engine creates the topic too, but this service may start first.
        await ensure_topics(settings, [step_request_topic(OWNER)])
        senders.append(Sender(runtime.db, settings))
        await senders[0].start()

    async def shutdown(runtime: Runtime) -> None:
        for sender in senders:
            await sender.stop()

    # A step's completion leaves the outbox at its commit's NOTIFY: no settle delay. Only a
    # configured model is asked anything, so only then is there a reply topic.
    app, runtime = build_app(
        "campaign",
        settings,
        register,
        commands={**review_command_handlers(settings), **monitoring_commands(settings)},
        outbox_schema=SCHEMA,
        outbox_settle_seconds=0,
        startup=startup,
        shutdown=shutdown,
        asks_services=settings.llm_configured,
    )
    return app, runtime
