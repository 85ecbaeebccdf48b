"""PostgreSQL access for workflow runs (the `workflow` schema)."""

from __future__ import annotations

import json
import uuid

from shared.db import Connection
from shared.events import IntentDetected


async def mark_processed(conn: Connection, consumer: str, event_id: uuid.UUID) -> bool:
    """Record that `consumer` handled `event_id`; False if it already had (a redelivery)."""
    status = await conn.execute(
        "INSERT INTO workflow.processed_events (consumer, event_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        consumer,
        event_id,
    )
    return bool(status == "INSERT 0 1")


async def create_run_for_intent(
    conn: Connection, event: IntentDetected, workflow_type: str, version: int
) -> bool:
    """Create the run an intent starts; False if that intent already started one."""
    status = await conn.execute(
        """
        INSERT INTO workflow.runs
            (run_id, workflow_type, definition_version, status, current_state, params,
             intent_id, correlation_id)
        VALUES ($1, $2, $3, 'pending', 'start', $4::jsonb, $5, $6)
        ON CONFLICT DO NOTHING
        """,
        event.workflow_id,
        workflow_type,
        version,
        json.dumps({"slots": event.slots.model_dump(), "requested_by": event.requested_by}),
        event.intent_id,
        event.correlation_id,
    )
    return bool(status == "INSERT 0 1")
