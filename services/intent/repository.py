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


# One statement, so the log row and its event commit together in one round trip; only constant
# fragments are joined here.
_LOG_DETECTION = """
    WITH logged AS (
        INSERT INTO intent.intent_log
            (intent_id, conversation_id, message, language, mode, intent, confidence, slots,
             needs_clarification, clarification_question, correlation_id, requested_by, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13)
    )
"""
_LOG_AND_ANNOUNCE = _LOG_DETECTION + outbox.insert_statement("intent", first_parameter=14)


async def log_and_announce(
    conn: asyncpg.Pool | Connection, event: IntentDetected, detection: Detection, topic: str
) -> None:
    """Log the detection and put its event in the outbox: one statement, so both or neither, in
    one round trip."""
    await conn.execute(
        _LOG_AND_ANNOUNCE,
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
        *outbox.row(topic, str(event.intent_id), event),
    )
