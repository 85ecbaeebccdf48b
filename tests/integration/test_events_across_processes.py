"""An event published by one process is consumed by a service in another, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from faststream.kafka import KafkaBroker

from shared.contracts.common import DeadLetter
from shared.contracts.intent import IntentDetected, Slots, workflow_id_for_intent
from shared.settings import Settings
from shared.topics import DEAD_LETTER, INTENT_DETECTED
from tests.support.stack import StartService

pytestmark = pytest.mark.integration


@pytest.fixture
async def publisher(prepared: Settings) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(prepared.kafka_servers)
    await broker.start()
    yield broker
    await broker.stop()


async def wait_for_value(
    pool: asyncpg.Pool, sql: str, *args: object, timeout: float = 30
) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await pool.fetchval(sql, *args)
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def campaign_intent(**changes: object) -> IntentDetected:
    fields: dict[str, object] = {
        "mode": "workflow",
        "intent": "email_campaign",
        "confidence": 0.93,
        "message": "email all senior Python developers in Berlin about the Staff Backend role",
        "slots": Slots(
            skills=["python"],
            location="Berlin",
            seniority="senior",
            job_title="Staff Backend Engineer",
        ),
        "source": "ats-integration-test",
        **changes,
    }
    return IntentDetected.model_validate(fields)


async def test_intent_from_another_system_starts_one_workflow(
    start_service: StartService, publisher: KafkaBroker, db: asyncpg.Pool
) -> None:
    start_service("workflow")
    event = campaign_intent()
    key = str(event.intent_id).encode()

    await publisher.publish(event, INTENT_DETECTED.name, key=key)
    run_status = await wait_for_value(
        db,
        "SELECT status FROM workflow.runs WHERE run_id = $1",
        workflow_id_for_intent(event.intent_id),
    )
    # The run starts and asks the campaign service (not running here) for its first step.
    assert run_status == "running"

    # The same event redelivered, and a second event about the same intent: nothing new starts.
    # The engine keeps no inbox (the run id derived from the intent id is what dedupes), so a
    # later intent on the same partition marks that the copies before it were consumed.
    await publisher.publish(event, INTENT_DETECTED.name, key=key)
    again = event.model_copy(update={"event_id": uuid.uuid4()})
    await publisher.publish(again, INTENT_DETECTED.name, key=key)
    marker = campaign_intent()
    await publisher.publish(marker, INTENT_DETECTED.name, key=key)
    assert await wait_for_value(
        db, "SELECT count(*) FROM workflow.runs WHERE intent_id = $1", marker.intent_id
    )
    runs = await db.fetchval(
        "SELECT count(*) FROM workflow.runs WHERE intent_id = $1", event.intent_id
    )
    assert runs == 1
    params = await db.fetchval(
        "SELECT params->'slots'->>'location' FROM workflow.runs WHERE intent_id=$1", event.intent_id
    )
    assert params == "Berlin"


async def test_a_burst_of_intents_starts_each_workflow_once(
    start_service: StartService, publisher: KafkaBroker, db: asyncpg.Pool
) -> None:
    """Published before the service starts, the burst comes in one fetch and is started in one
    transaction: copies within it start nothing more, and intents that start nothing are
    skipped without holding the others back."""
    startable = [campaign_intent() for _ in range(5)]
    simple = campaign_intent(mode="simple", intent="inference", slots=Slots())
    burst = [
        *startable,
        startable[0],
        simple,
        startable[1].model_copy(update={"event_id": uuid.uuid4()}),
    ]
    for event in burst:
        await publisher.publish(event, INTENT_DETECTED.name, key=str(event.intent_id).encode())
    start_service("workflow")
    ids = [e.intent_id for e in startable]
    running = "SELECT count(*) FROM workflow.runs WHERE intent_id = ANY($1) AND status = 'running'"
    assert await wait_for_value(db, running + " HAVING count(*) = 5", ids) == 5
    per_run = await db.fetch(
        "SELECT r.intent_id, count(*) AS runs, max(s.n) AS steps FROM workflow.runs r"
        " JOIN LATERAL (SELECT count(*) AS n FROM workflow.steps WHERE run_id = r.run_id) s"
        " ON true WHERE r.intent_id = ANY($1) GROUP BY r.intent_id",
        [*ids, simple.intent_id],
    )
    assert sorted((r["runs"], r["steps"]) for r in per_run) == [(1, 1)] * 5
    assert {r["intent_id"] for r in per_run} == set(ids)


async def test_simple_and_unclear_intents_start_nothing(
    start_service: StartService, publisher: KafkaBroker, db: asyncpg.Pool
) -> None:
    workflow = start_service("workflow")
    simple = campaign_intent(mode="simple", intent="inference", slots=Slots())
    unclear = campaign_intent(needs_clarification=True)
    no_audience = campaign_intent(slots=Slots(job_title="Staff Backend Engineer"))
    for event in (simple, unclear, no_audience):
        await publisher.publish(event, INTENT_DETECTED.name, key=str(event.intent_id).encode())
    for event in (simple, unclear, no_audience):  # the engine logs each decision not to start
        await asyncio.to_thread(workflow.wait_for, f"intent {event.intent_id} starts no workflow")
    ids = [e.intent_id for e in (simple, unclear, no_audience)]
    assert (
        await db.fetchval("SELECT count(*) FROM workflow.runs WHERE intent_id = ANY($1)", ids) == 0
    )


async def test_poison_message_is_dead_lettered_and_consumption_goes_on(
    start_service: StartService, publisher: KafkaBroker, db: asyncpg.Pool, prepared: Settings
) -> None:
    letters: asyncio.Queue[DeadLetter] = asyncio.Queue()
    marker = uuid.uuid4().hex
    reader = KafkaBroker(prepared.kafka_servers)

    @reader.subscriber(DEAD_LETTER.name, auto_offset_reset="earliest", fetch_max_wait_ms=5)
    async def collect(letter: DeadLetter) -> None:
        if marker in letter.payload:
            await letters.put(letter)

    await reader.start()
    try:
        start_service("workflow")
        await publisher.publish(f"not json {marker}".encode(), INTENT_DETECTED.name, key=b"poison")
        await publisher.publish(
            {"mode": "telepathy", "marker": marker}, INTENT_DETECTED.name, key=b"p2"
        )
        good = campaign_intent()
        await publisher.publish(good, INTENT_DETECTED.name, key=str(good.intent_id).encode())

        got = [await asyncio.wait_for(letters.get(), 15) for _ in range(2)]
        # Different keys may land on different partitions, so the letters come in either order.
        first, second = sorted(got, key=lambda letter: not letter.payload.startswith("not json"))
        assert {first.source_topic, second.source_topic} == {INTENT_DETECTED.name}
        assert "not a valid IntentDetected" in first.reason
        assert "mode" in second.reason
        assert (
            await wait_for_value(
                db, "SELECT count(*) FROM workflow.runs WHERE intent_id = $1", good.intent_id
            )
            == 1
        )
    finally:
        await reader.stop()
