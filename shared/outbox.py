"""The transactional outbox: an event is written in the same transaction as the state it announces,
and a relay publishes it to Kafka afterwards, so a state change and its events commit or fail
together.

Each publishing schema has an `outbox` table. One relay per schema publishes at a time (an advisory
lock), in id order, so events with the same key keep their order. Publishing is at-least-once: a
crash between publish and marking can publish a row again, and consumers dedupe by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate

from shared.db import Connection
from shared.events import Event

log = logging.getLogger(__name__)


def _channel(schema: str) -> str:
    return f"{schema}_outbox"


def insert_statement(schema: str, first_parameter: int = 1) -> str:
    """`INSERT INTO <schema>.outbox ...` with numbered parameters from `first_parameter`, for a
    writer that combines its own write and the event into one statement (one round trip)."""
    p = [f"${first_parameter + i}" for i in range(5)]
    return (
        f"INSERT INTO {schema}.outbox (event_id, topic, key, payload, headers)"  # noqa: S608 - schema is ours
        f" VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}::jsonb, {p[4]}::jsonb)"
    )


def row(topic: str, key: str, event: Event) -> tuple[object, ...]:
    """The parameters of `insert_statement`, with the current trace context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (event.event_id, topic, key, event.model_dump_json(), json.dumps(carrier))


async def enqueue_many(conn: Connection, schema: str, events: list[tuple[str, str, Event]]) -> None:
    """Add several (topic, key, event) to `schema`'s outbox in one statement, in order."""
    if not events:
        return
    rows = [row(topic, key, event) for topic, key, event in events]
    await conn.execute(
        f"INSERT INTO {schema}.outbox (event_id, topic, key, payload, headers)"  # noqa: S608
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[])",
        *(list(column) for column in zip(*rows, strict=True)),
    )


async def enqueue(conn: Connection, schema: str, topic: str, key: str, event: Event) -> None:
    """Add `event` to `schema`'s outbox inside the caller's transaction. A trigger on the table
    wakes the relay when the transaction commits."""
    await conn.execute(insert_statement(schema), *row(topic, key, event))


class OutboxRelay:
    """Publishes `schema`'s outbox rows; woken by NOTIFY, and polling as a safety net."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap_servers: list[str],
        schema: str,
        *,
        dsn: str,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        settle_seconds: float = 0.01,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        # A producer of its own, without FastStream's per-message middlewares: the rows already
        # carry their headers (the trace context of the transaction that wrote them).
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=0,
            client_id=f"{schema}-outbox",
        )
        self._schema = schema
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._settle_seconds = settle_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(_channel(self._schema), self._on_notify)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            await self._listener.close()
        await self._producer.stop()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            # Cleared before the batch, not after: a row committed while the batch is being
            # published wakes the next round at once instead of waiting for the poll.
            self._wake.clear()
            try:
                published = await self.publish_batch()
            except Exception:  # keep relaying after a broker or database hiccup
                log.exception("outbox relay for %s failed; retrying", self._schema)
                published = 0
                await asyncio.sleep(self._poll_seconds)
            if published >= self._batch_size:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
                # Let the request that wrote the row answer its caller first, and let more rows
                # arrive, so they go out in one batch; events are not on a caller's critical path.
                await asyncio.sleep(self._settle_seconds)

    async def publish_batch(self) -> int:
        """Publish up to one batch of pending rows; return how many were published."""
        schema = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", schema):
                return 0  # another relay instance is publishing this schema's outbox
            rows = await conn.fetch(
                f"SELECT id, topic, key, payload, headers FROM {schema}.outbox"  # noqa: S608
                " WHERE published_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0
            pending = [await self._send(row) for row in rows]
            await asyncio.gather(*pending)
            await conn.execute(
                f"UPDATE {schema}.outbox SET published_at = now() WHERE id = ANY($1)",  # noqa: S608
                [row["id"] for row in rows],
            )
        return len(rows)

    async def _send(self, row: asyncpg.Record) -> asyncio.Future[Any]:
        """Hand one row to the producer (in order); the returned future resolves when the broker
        has acknowledged it."""
        headers = json.loads(row["headers"])
        payload = row["payload"]
        correlation = json.loads(payload).get("correlation_id") or ""
        headers.update({"content-type": "application/json", "correlation_id": correlation})
        future: asyncio.Future[Any] = await self._producer.send(
            row["topic"],
            value=payload.encode(),
            key=row["key"].encode() if row["key"] else None,
            headers=[(name, value.encode()) for name, value in headers.items()],
        )
        return future
