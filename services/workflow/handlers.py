"""Event handlers of the workflow service, given their dependencies as arguments."""

from __future__ import annotations

import logging

import asyncpg

from services.workflow import repository
from services.workflow.domain import decide_start
from shared.events import IntentDetected

log = logging.getLogger(__name__)
CONSUMER = "workflow.start-from-intent"


async def start_workflow_from_intent(pool: asyncpg.Pool, event: IntentDetected) -> bool:
    """Start the workflow a detected intent asks for, exactly once per intent id.

    The processed-events row and the run are written in one transaction, so a redelivered or
    duplicated event starts nothing. Returns whether a run was created.
    """
    decision = decide_start(event)
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.mark_processed(conn, CONSUMER, event.event_id):
            log.info("intent event %s already processed", event.event_id)
            return False
        if not decision.start or decision.workflow is None:
            log.info("intent %s starts no workflow: %s", event.intent_id, decision.reason)
            return False
        created = await repository.create_run_for_intent(
            conn, event, decision.workflow.name, decision.workflow.version
        )
    if created:
        log.info(
            "intent %s started %s run %s",
            event.intent_id,
            decision.workflow.name,
            event.workflow_id,
        )
    return created
