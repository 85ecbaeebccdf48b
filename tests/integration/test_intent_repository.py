"""The intent service's writes against the real database: a detection made without the
conversation's previous turn is written in one statement unless that turn awaits an answer."""

from __future__ import annotations

import uuid

import asyncpg

from services.intent import repository
from services.intent.domain.detector import Detection
from shared.contracts.intent import IntentDetected, Slots
from shared.topics import INTENT_DETECTED

QUESTION = "Who should I contact?"
SIMPLE = Detection(mode="simple", intent="inference", confidence=0.9, slots=Slots(), language="en")
ASKING = Detection(
    mode="workflow",
    intent="email_campaign",
    confidence=0.9,
    slots=Slots(job_title="Staff Backend Engineer"),
    language="en",
    needs_clarification=True,
    clarification_question=QUESTION,
)
ANSWERED = Detection(
    mode="workflow",
    intent="email_campaign",
    confidence=0.9,
    slots=Slots(job_title="Staff Backend Engineer", skills=["python"]),
    language="en",
)


def event(conversation: str, detection: Detection) -> IntentDetected:
    return IntentDetected(
        conversation_id=conversation,
        message="a message",
        mode=detection.mode,
        intent=detection.intent,
        confidence=detection.confidence,
        slots=detection.slots,
        needs_clarification=detection.needs_clarification,
    )


async def stored(db: asyncpg.Pool, detected: IntentDetected) -> tuple[int, int]:
    """(log rows, outbox rows) for one detection."""
    logged = await db.fetchval(
        "SELECT count(*) FROM intent.intent_log WHERE intent_id = $1", detected.intent_id
    )
    queued = await db.fetchval(
        "SELECT count(*) FROM intent.outbox WHERE event_id = $1", detected.event_id
    )
    return logged, queued


async def test_a_detection_is_written_unless_the_last_turn_awaits_an_answer(
    db: asyncpg.Pool,
) -> None:
    conversation = f"c-{uuid.uuid4().hex}"
    write = repository.log_and_announce_unless_awaited
    topic = INTENT_DETECTED.name

    first = event(conversation, SIMPLE)
    assert await write(db, first, SIMPLE, topic)  # a new conversation
    assert await stored(db, first) == (1, 1)
    asking = event(conversation, ASKING)
    assert await write(db, asking, ASKING, topic)  # the last turn was a question answered

    refused = event(conversation, SIMPLE)
    assert not await write(db, refused, SIMPLE, topic)  # the assistant asked: nothing written
    assert await stored(db, refused) == (0, 0)
    previous = await repository.previous_turn(db, conversation, "default")
    assert previous is not None
    assert previous.awaits_answer
    assert previous.slots == ASKING.slots

    answer = event(conversation, ANSWERED)
    await repository.log_and_announce(db, answer, ANSWERED, topic)  # detected with the turn
    after = event(conversation, SIMPLE)
    assert await write(db, after, SIMPLE, topic)
    assert await stored(db, after) == (1, 1)
