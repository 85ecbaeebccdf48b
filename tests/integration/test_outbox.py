"""The outbox against the real broker and PostgreSQL: events written in `outbox.transaction()` are
published when it commits (no NOTIFY, no reading back) and marked published; a rolled-back
transaction publishes nothing; a row whose writer died before publishing it is published by a relay
once its grace is over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared import outbox
from shared.broker import ensure_topics, producer_options
from shared.contracts.common import Event
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.topics import TopicSpec
from tests.support.action_owner import prepare_owner_schema
from tests.support.api import wait_for

QUIET_POLL_SECONDS = 60.0  # the relay's safety-net poll, out of the way of these tests


class Pinged(Event):
    note: str


@pytest.fixture
async def schema(db: asyncpg.Pool) -> AsyncIterator[str]:
    name = f"outbox_{uuid.uuid4().hex[:10]}"
    async with db.acquire() as conn:
        await prepare_owner_schema(conn, name)
    yield name
    await db.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
async def topic(prepared: Settings) -> str:
    name = f"test.outbox.{uuid.uuid4().hex[:10]}"
    await ensure_topics(prepared, [TopicSpec(name, 1, "none", "outbox tests")])
    return name


@pytest.fixture
async def consumer(prepared: Settings, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=prepared.kafka_servers,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    yield consumer
    await consumer.stop()


async def relay_for(settings: Settings, db: asyncpg.Pool, schema: str) -> OutboxRelay:
    relay = OutboxRelay(
        db, producer_options(settings), schema, dsn=settings.database_url,
        poll_seconds=QUIET_POLL_SECONDS,
    )  # fmt: skip
    await relay.start()
    return relay


@pytest.fixture
async def relay(prepared: Settings, db: asyncpg.Pool, schema: str) -> AsyncIterator[OutboxRelay]:
    """This process's relay for `schema`, polling only once a minute."""
    relay = await relay_for(prepared, db, schema)
    yield relay
    await relay.stop()


async def received(consumer: AIOKafkaConsumer, until: uuid.UUID) -> list[uuid.UUID]:
    """Event ids read from the topic, up to and including `until` (15 s at most)."""
    seen: list[uuid.UUID] = []
    async with asyncio.timeout(15):
        while until not in seen:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                seen += [Pinged.model_validate_json(r.value or b"").event_id for r in records]
    return seen


async def published_at(db: asyncpg.Pool, schema: str, event_id: uuid.UUID) -> object:
    return await db.fetchval(
        f"SELECT published_at FROM {schema}.outbox WHERE event_id = $1",  # noqa: S608
        event_id,
    )


async def marked_published(db: asyncpg.Pool, schema: str, *event_ids: uuid.UUID) -> None:
    """Wait (10 s at most) until the rows are marked: that happens after the broker's
    acknowledgement, so a consumer may read an event before its row is marked."""
    async with asyncio.timeout(10):
        for event_id in event_ids:
            while await published_at(db, schema, event_id) is None:  # noqa: ASYNC110 - no event
                await asyncio.sleep(0.05)


async def test_committed_events_are_published_at_commit_and_marked(
    relay: OutboxRelay, db: asyncpg.Pool, schema: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    first, second = Pinged(note="one"), Pinged(note="two")
    async with outbox.transaction(db, schema) as conn:
        await outbox.enqueue(conn, schema, topic, "k", first)
        await outbox.enqueue_many(conn, schema, [(topic, "k", second)])
    # The relay polls only once a minute and these rows wake nobody: only the path straight
    # after commit can publish them within the 15 s.
    assert await received(consumer, second.event_id) == [first.event_id, second.event_id]
    await marked_published(db, schema, first.event_id, second.event_id)


async def test_one_statement_writes_and_publishes_its_event(
    relay: OutboxRelay, db: asyncpg.Pool, schema: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    """`execute_with_event`: the writer's own insert and the event commit in one statement; the
    event leaves when it returns (the relay's poll is a minute away); a failing statement writes
    and publishes nothing."""
    await db.execute(f"CREATE TABLE {schema}.notes (note text PRIMARY KEY)")
    writes = f"WITH written AS (INSERT INTO {schema}.notes (note) VALUES ($1))"  # noqa: S608
    event = Pinged(note="written")
    await outbox.execute_with_event(db, schema, writes, ("written",), (topic, "k", event))
    assert await received(consumer, event.event_id) == [event.event_id]
    await marked_published(db, schema, event.event_id)

    duplicate = Pinged(note="written")
    with pytest.raises(asyncpg.UniqueViolationError):
        await outbox.execute_with_event(db, schema, writes, ("written",), (topic, "k", duplicate))
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.outbox") == 1  # noqa: S608
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.notes") == 1  # noqa: S608


async def test_a_conditional_statement_writes_its_event_only_where_the_condition_holds(
    relay: OutboxRelay, db: asyncpg.Pool, schema: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    """`execute_with_event(..., only_if=...)`: the writer's insert and the event, both or neither,
    and the answer says which; an event not written is not published."""
    await db.execute(f"CREATE TABLE {schema}.notes (note text PRIMARY KEY)")
    writes = (
        f"WITH written AS (INSERT INTO {schema}.notes (note) SELECT $1"  # noqa: S608
        f" WHERE NOT EXISTS (SELECT 1 FROM {schema}.notes) RETURNING note)"
    )
    condition = "EXISTS (SELECT 1 FROM written)"
    first, second = Pinged(note="first"), Pinged(note="second")
    for note, event in (("first", first), ("second", second)):
        written = await outbox.execute_with_event(
            db, schema, writes, (note,), (topic, "k", event), only_if=condition
        )
        assert written is (event is first)
    assert await received(consumer, first.event_id) == [first.event_id]
    assert await db.fetchval(f"SELECT array_agg(note) FROM {schema}.notes") == ["first"]  # noqa: S608
    stored = await db.fetchval(f"SELECT array_agg(event_id) FROM {schema}.outbox")  # noqa: S608
    assert stored == [first.event_id]


async def test_a_rolled_back_transaction_publishes_nothing(
    relay: OutboxRelay, db: asyncpg.Pool, schema: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    lost, kept = Pinged(note="rolled back"), Pinged(note="committed")

    async def fail_after_writing() -> None:
        async with outbox.transaction(db, schema) as conn:
            await outbox.enqueue(conn, schema, topic, "k", lost)
            raise RuntimeError("the writer failed after writing its event")

    with pytest.raises(RuntimeError):
        await fail_after_writing()
    async with outbox.transaction(db, schema) as conn:
        await outbox.enqueue(conn, schema, topic, "k", kept)
    assert await received(consumer, kept.event_id) == [kept.event_id]


async def test_rows_in_a_savepoint_marked_relayed_wait_for_the_relay(
    relay: OutboxRelay, db: asyncpg.Pool, schema: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    """Code under `relayed()` writes ordinary rows: the relay (woken by NOTIFY) publishes them."""
    event = Pinged(note="from a savepoint")
    async with outbox.transaction(db, schema) as conn, conn.transaction():
        with outbox.relayed():
            await outbox.enqueue(conn, schema, topic, "k", event)
    relay_after = await db.fetchval(
        f"SELECT relay_after FROM {schema}.outbox WHERE event_id = $1",  # noqa: S608
        event.event_id,
    )
    assert relay_after is None
    assert await received(consumer, event.event_id) == [event.event_id]


async def test_a_row_its_writer_never_published_goes_out_after_its_grace(
    prepared: Settings,
    db: asyncpg.Pool,
    schema: str,
    topic: str,
    consumer: AIOKafkaConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer commits, then dies before its relay sends the row (here: the relay drops what
    it is handed). Another relay, polling, publishes the row once `relay_after` has passed."""
    monkeypatch.setattr(outbox, "RELAY_GRACE_SECONDS", 1.0)
    dying = await relay_for(prepared, db, schema)
    monkeypatch.setattr(dying, "publish_committed", lambda rows: None)
    event = Pinged(note="orphaned")
    try:
        async with outbox.transaction(db, schema) as conn:
            await outbox.enqueue(conn, schema, topic, "k", event)
    finally:
        await dying.stop()
    assert await published_at(db, schema, event.event_id) is None
    survivor = OutboxRelay(
        db, producer_options(prepared), schema, dsn=prepared.database_url, poll_seconds=0.2
    )
    await survivor.start()
    try:
        assert await received(consumer, event.event_id) == [event.event_id]
        await marked_published(db, schema, event.event_id)
    finally:
        await survivor.stop()


async def test_the_relay_listens_again_when_its_connection_is_lost(
    db: asyncpg.Pool, schema: str, topic: str, consumer: AIOKafkaConsumer, relay: OutboxRelay
) -> None:
    """PostgreSQL restarted, or the relay's LISTEN backend terminated: the relay connects again,
    and a row another process commits still wakes it (this relay polls only once a minute, so
    only the NOTIFY can publish the row within `received`'s 15 s)."""
    listening = f'LISTEN "{schema}_outbox"'

    async def listener_pids() -> list[int]:
        rows = await db.fetch("SELECT pid FROM pg_stat_activity WHERE query = $1", listening)
        return [row["pid"] for row in rows]

    [first] = await listener_pids()
    assert await db.fetchval("SELECT pg_terminate_backend($1)", first)

    async def listening_again() -> list[int]:
        pids = await listener_pids()
        return pids if pids and first not in pids else []

    await wait_for(listening_again, timeout=10, what="a new LISTEN connection")
    event = Pinged(note="after the listener was lost")
    async with db.acquire() as conn, conn.transaction():  # not this process's outbox.transaction:
        await outbox.enqueue(conn, schema, topic, "k", event)  # only the NOTIFY says it is there
    assert await received(consumer, event.event_id) == [event.event_id]
