"""PostgreSQL access for the intent service (the `intent` schema)."""

from __future__ import annotations

import asyncpg

from services.intent.domain.detector import Detection, PreviousTurn
from shared import outbox
from shared.db import Connection
from shared.events import IntentDetected, Slots


async def previous_turn(
    conn: asyncpg.Pool | Connection, conversation_id: str
) -> PreviousTurn | None:
    row = await conn.fetchrow(
        "SELECT mode, intent, slots, needs_clarification FROM intent.intent_log"
        " WHERE conversation_id = $1 ORDER BY created_at DESC LIMIT 1",
        conversation_id,
    )
    if row is None:
        return None
    return PreviousTurn(
        mode=row["mode"],
        intent=row["intent"],
        slots=Slots.model_validate_json(row["slots"]),
        needs_clarification=row["needs_clarification"],
    )


_LOG_DETECTION = """
    WITH logged AS (
        INSERT INTO intent.intent_log
            (intent_id, conversation_id, message, language, mode, intent, confidence, slots,
             needs_clarification, clarification_question, correlation_id, requested_by, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13)
    )
"""


async def log_and_announce(
    pool: asyncpg.Pool, event: IntentDetected, detection: Detection, topic: str
) -> None:
    """Log the detection and put its event in the outbox: one statement, so both or neither, in
    one round trip; the event leaves as soon as it returns."""
    await outbox.execute_with_event(
        pool,
        "intent",
        _LOG_DETECTION,
        (
            event.intent_id,
            event.conversation_id,
            event.message,
            detection.language,
            detection.mode,
            detection.intent,
            detection.confidence,
            detection.slots.model_dump_json(),
            detection.needs_clarification,
            detection.clarification_question,
            event.correlation_id,
            event.requested_by,
            event.occurred_at,
        ),
        (topic, str(event.intent_id), event),
    )
