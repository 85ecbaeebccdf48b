"""Running an `ActionWorker` outside a service app: for actions owned by a test or a
benchmark, which have no migrations of their own. `prepare_owner_schema` creates the tables an
owner needs (the outbox with its wake-up trigger, and the action results); `ActionOwner` runs the
consumer, the pool and the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider

from shared.action_worker import ACTION_RESULTS_DDL, ActionWorker
from shared.broker import create_broker, ensure_topics, producer_options
from shared.db import Connection, create_pool
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.topics import step_request_topic
from tests.support.workflows import EFFECTS_DDL, make_worker

_OWNER_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    key           text,
    payload       jsonb       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS relay_after timestamptz;
CREATE INDEX IF NOT EXISTS outbox_unpublished ON {schema}.outbox (id) WHERE published_at IS NULL;
CREATE OR REPLACE FUNCTION {schema}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE relay_after IS NULL) THEN
        PERFORM pg_notify('{schema}_outbox', '');
    END IF;
    RETURN NULL;
END;
$$;
CREATE OR REPLACE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_outbox();
"""


async def prepare_owner_schema(conn: Connection, schema: str) -> None:
    """Create `schema` with an outbox and action results, if they do not exist."""
    if not schema.isidentifier() or schema.lower() != schema:
        raise ValueError(f"schema name {schema!r} must be a lower-case identifier")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
        await conn.execute(_OWNER_DDL.format(schema=schema))
        await conn.execute(ACTION_RESULTS_DDL.format(schema=schema))


class ActionOwner:
    """A process-local owner of actions: consumes its step requests, reports completions."""

    def __init__(self, settings: Settings, worker: ActionWorker) -> None:
        self._settings = settings
        self._worker = worker
        self._pool: asyncpg.Pool | None = None
        self._relay: OutboxRelay | None = None
        self._broker: KafkaBroker = create_broker(
            settings, client_id=f"{worker.owner}-actions", tracer_provider=TracerProvider()
        )
        worker.subscribe(self._broker, settings, self.pool)

    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "started by start()"
        return self._pool

    async def start(self) -> None:
        self._pool = await create_pool(self._settings, max_size=20)
        async with self._pool.acquire() as conn:
            await prepare_owner_schema(conn, self._worker.schema)
        self._relay = OutboxRelay(
            self._pool,
            producer_options(self._settings),
            self._worker.schema,
            dsn=self._settings.database_url,
            settle_seconds=0,
        )
        await ensure_topics(self._settings, [step_request_topic(self._worker.owner)])
        await self._broker.start()
        await self._relay.start()
        await self._assigned(timeout=60)

    async def _assigned(self, timeout: float) -> None:
        """Wait until the consumer group has given this owner its partitions (a new group takes
        a few seconds to form), so requests sent from now on are handled at once."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not all(_has_partitions(sub) for sub in self._broker.subscribers):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the {self._worker.owner} action consumer got no partitions")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._relay is not None:
            await self._relay.stop()
        await self._broker.stop()
        if self._pool is not None:
            await self._pool.close()


def _has_partitions(subscriber: object) -> bool:
    consumer = getattr(subscriber, "consumer", None)  # the aiokafka consumer, once started
    return consumer is not None and bool(consumer.assignment())


@contextlib.asynccontextmanager
async def started_testkit_owner(settings: Settings) -> AsyncIterator[ActionOwner]:
    """The owner of the `testkit.*` actions (tests/support/workflows.py) in this process,
    started, with the `testkit.effects` table each action records its effect in."""
    owner = ActionOwner(settings, make_worker())
    await owner.start()
    try:
        async with owner.pool().acquire() as conn:
            await conn.execute(EFFECTS_DDL)
        yield owner
    finally:
        await owner.stop()
