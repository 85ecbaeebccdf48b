"""The workflow service's FastStream app: starts workflows from `intent.detected`."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker

from services.workflow.handlers import start_workflow_from_intent
from shared.broker import consumer_options
from shared.events import IntentDetected
from shared.service import Runtime, build_app
from shared.settings import Settings
from shared.topics import INTENT_DETECTED

log = logging.getLogger(__name__)
RETRY_PAUSE_SECONDS = 1.0


def register(broker: KafkaBroker, runtime: Runtime) -> None:
    @broker.subscriber(
        INTENT_DETECTED.name,
        group_id="workflow.intents",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **consumer_options(runtime.settings, background=True),
    )
    async def on_intent_detected(event: IntentDetected) -> None:
        try:
            await start_workflow_from_intent(runtime.db, event)
        except (OSError, asyncpg.PostgresError):
            # The message is not committed and comes back at once (nack): pause first, so an
            # outage of PostgreSQL is not a tight loop. Nothing is lost either way.
            log.exception("could not start a workflow for intent %s; retrying", event.intent_id)
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            raise


def create_app(settings: Settings) -> tuple[FastStream, Runtime]:
    return build_app("workflow", settings, register)
