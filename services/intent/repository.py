"""PostgreSQL access for the intent service (the `intent` schema)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.intent.domain.detector import Detection, PreviousTurn
from shared import outbox
from shared.contracts.intent import IntentDetected, Slots
from shared.contracts.workflow import Question, RunQuestion, WorkflowSignal
from shared.db import Connection
from shared.topics import WORKFLOW_SIGNALS


async def previous_turn(
    conn: asyncpg.Pool | Connection, conversation_id: str, team: str
) -> PreviousTurn | None:
    row = await conn.fetchrow(
        "SELECT mode, intent, slots, needs_clarification FROM intent.intent_log"
        " WHERE conversation_id = $1 AND team = $2 ORDER BY created_at DESC LIMIT 1",
        conversation_id,
        team,
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
    needs_clarification, clarification_question, correlation_id, requested_by, created_at, team
"""
# Typed: in an INSERT ... SELECT, PostgreSQL would take an untyped parameter for text.
_VALUES = """
    $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::float8, $8::jsonb,
    $9::boolean, $10::text, $11::text, $12::text, $13::timestamptz, $14::text
"""
_LOG_DETECTION = f"WITH logged AS (INSERT INTO intent.intent_log ({_COLUMNS}) VALUES ({_VALUES}))"  # noqa: S608
# The same insert, unless the conversation's last turn awaits an answer (PreviousTurn.awaits_answer)
_LOG_UNLESS_AWAITED = f"""
    WITH awaited AS (
        (SELECT mode = 'workflow' AND needs_clarification AS answer_awaited
         FROM intent.intent_log WHERE conversation_id = $2 AND team = $14
         ORDER BY created_at DESC LIMIT 1)
        UNION ALL
        SELECT true FROM intent.run_questions
        WHERE conversation_id = $2 AND team = $14 AND answered_at IS NULL
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
        event.team,
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


# ---- Questions runs wait on -------------------------------------------------------------------


@dataclass(frozen=True)
class PendingQuestion:
    run_id: uuid.UUID
    question: Question


async def pending_question(
    conn: asyncpg.Pool | Connection, conversation_id: str, team: str
) -> PendingQuestion | None:
    """The question a run started in this conversation (of this team) waits on, if one does (the
    latest)."""
    row = await conn.fetchrow(
        "SELECT run_id, question FROM intent.run_questions WHERE conversation_id = $1"
        " AND team = $2 AND answered_at IS NULL ORDER BY asked_at DESC LIMIT 1",
        conversation_id,
        team,
    )
    if row is None:
        return None
    asked = json.loads(row["question"])
    question = Question(text=asked["text"], field=asked["field"], choices=asked["choices"])
    return PendingQuestion(row["run_id"], question)


_ANSWER = f"""
    WITH answered AS (
        UPDATE intent.run_questions SET answered_at = now()
        WHERE run_id = $15 AND answered_at IS NULL RETURNING run_id
    ), logged AS (
        INSERT INTO intent.intent_log ({_COLUMNS})
        SELECT {_VALUES} FROM answered
    )
"""  # noqa: S608 - constants only


async def log_answer(
    pool: asyncpg.Pool,
    turn: IntentDetected,
    detection: Detection,
    question: PendingQuestion,
    signal: WorkflowSignal,
) -> bool:
    """Log the message as the answer to the run's question and send the answer to the run
    (`workflow.signals`), in one statement; False when the question was answered meanwhile."""
    return await outbox.execute_with_event(
        pool,
        "intent",
        _ANSWER,
        (*_row(turn, detection), question.run_id),
        (WORKFLOW_SIGNALS.name, str(question.run_id), signal),
        only_if="EXISTS (SELECT 1 FROM answered)",
    )


async def track_questions(pool: asyncpg.Pool, events: Sequence[RunQuestion]) -> None:
    """Keep the questions runs ask (by the conversation of the intent that started the run) and
    close those of runs that no longer wait on one: answered through the API, expired,
    cancelled. Only each run's last event in the batch counts: two statements a batch."""
    last = {event.run_id: event for event in events}
    asked = [
        (e.run_id, json.dumps(e.question), e.intent_id)
        for e in last.values()
        if e.question is not None and e.intent_id is not None
    ]
    closed = [e.run_id for e in last.values() if e.question is None]
    async with pool.acquire() as conn, conn.transaction():
        if asked:
            await conn.execute(
                "INSERT INTO intent.run_questions (run_id, conversation_id, question, team)"
                " SELECT q.run_id, l.conversation_id, q.question::jsonb, l.team"
                " FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS q(run_id, question, intent_id)"
                " JOIN intent.intent_log l USING (intent_id) WHERE l.conversation_id IS NOT NULL"
                " ON CONFLICT (run_id) DO UPDATE SET question = excluded.question,"
                " asked_at = now(), answered_at = NULL",
                [run_id for run_id, _, _ in asked],
                [question for _, question, _ in asked],
                [intent_id for _, _, intent_id in asked],
            )
        if closed:
            await conn.execute(
                "UPDATE intent.run_questions SET answered_at = now()"
                " WHERE run_id = ANY($1::uuid[]) AND answered_at IS NULL",
                closed,
            )
