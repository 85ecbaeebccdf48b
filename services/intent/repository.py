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


_COLUMNS = """
    intent_id, conversation_id, message, language, mode, intent, confidence, slots,
    needs_clarification, clarification_question, correlation_id, requested_by, created_at
"""
# Typed: in an INSERT ... SELECT, PostgreSQL would take an untyped parameter for text.
_VALUES = """
    $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::float8, $8::jsonb,
    $9::boolean, $10::text, $11::text, $12::text, $13::timestamptz
"""
_LOG_DETECTION = f"WITH logged AS (INSERT INTO intent.intent_log ({_COLUMNS}) VALUES ({_VALUES}))"  # noqa: S608
# The same insert, unless the conversation's last turn awaits an answer (PreviousTurn.awaits_answer)
_LOG_UNLESS_AWAITED = f"""
    WITH awaited AS (
        SELECT mode = 'workflow' AND needs_clarification AS answer_awaited
        FROM intent.intent_log WHERE conversation_id = $2 ORDER BY created_at DESC LIMIT 1
    ), logged AS (
        INSERT INTO intent.intent_log ({_COLUMNS})
        SELECT {_VALUES} WHERE NOT EXISTS (SELECT 1 FROM awaited WHERE answer_awaited)
        RETURNING intent_id
    )
"""  # noqa: S608 - constants only


def _row(event: IntentDetected, detection: Detection) -> tuple[object, ...]:
    return (
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
    )


async def log_and_announce(
    pool: asyncpg.Pool, event: IntentDetected, detection: Detection, topic: str
) -> None:
    """Log the detection and put its event in the outbox: one statement, so both or neither, in
    one round trip; the event leaves as soon as it returns."""
    await outbox.execute_with_event(
        pool, "intent", _LOG_DETECTION, _row(event, detection), (topic, str(event.intent_id), event)
    )


async def log_and_announce_unless_awaited(
    pool: asyncpg.Pool, event: IntentDetected, detection: Detection, topic: str
) -> bool:
    """`log_and_announce` a detection made without the conversation's previous turn, unless that
    turn awaits an answer (then it would have changed the detection): nothing is written, and
    False says to read the turn and detect again. One round trip for the usual message, instead
    of a read and a write."""
    return await outbox.execute_with_event(
        pool,
        "intent",
        _LOG_UNLESS_AWAITED,
        _row(event, detection),
        (topic, str(event.intent_id), event),
        only_if="EXISTS (SELECT 1 FROM logged)",
    )
