"""The transactional outbox: an event is written in the same transaction as the state it announces,
and published to Kafka afterwards, so a state change and its events commit or fail together.

Each publishing schema has an `outbox` table, and each process that writes to it runs an
`OutboxRelay` for it. Events reach Kafka in one of two ways:

- **Straight after commit.** Rows written in `transaction(pool, schema)` (or with
  `execute_with_event`) are handed to this process's relay when the transaction commits and
  published at once (after the relay's settle time, 0 where a step waits on them), in commit
  order, then marked published in batches. Nothing is read back, and nobody waits for a NOTIFY.
  Such a row carries `relay_after` (commit time plus RELAY_GRACE_SECONDS): if this process dies
  (or the broker is away) before the row is marked, a relay publishes it after that time.
- **By the relay.** Other rows wake the relay with NOTIFY (a trigger, on commit); one relay per
  schema publishes at a time (an advisory lock), in id order, so events with the same key keep
  their order. The relay also polls, as a safety net.

Publishing is at-least-once: a crash between publish and marking publishes a row again, and
consumers dedupe by event id. Rows written inside a savepoint that may roll back must not take the
first way: run such code under `relayed()` (the action worker does so for actions).

A process runs an `OutboxRelay`; its logic is in `Relay`, which takes the table and the producer
as small interfaces (`OutboxTable`, `Producer`), so unit tests pass fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate

from shared.contracts.common import Event
from shared.db import Connection
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from shared.telemetry import cause_of

log = logging.getLogger(__name__)

RELAY_GRACE_SECONDS = 5.0  # how long a relay leaves a row to the process that committed it
LISTEN_RETRY_SECONDS = 0.2  # the first pause before listening again after the connection is lost
LISTEN_RETRY_MAX_SECONDS = 5.0
BACKLOG_SAMPLE_SECONDS = 5.0  # how often a relay counts unpublished rows for the metrics

# Rows left to publish and the oldest one's age in seconds (the partial index on unpublished ids
# finds them; the age reads one row).
Backlog = Callable[[], Awaitable[tuple[int, float]]]


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row as a relay sends it: its id, and the Kafka message."""

    id: int
    topic: str
    key: str
    payload: str
    headers: dict[str, str]


@dataclass
class _Direct:
    """The rows one `transaction()` wrote, to publish when it commits."""

    conn: Connection
    schema: str
    rows: list[OutboxRow] = field(default_factory=list)


_direct: ContextVar[_Direct | None] = ContextVar("outbox_direct", default=None)
_relays: dict[str, Relay] = {}  # schema -> this process's running relay


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool, schema: str) -> AsyncIterator[Connection]:
    """A connection from `pool` in a transaction whose `schema` outbox rows this process publishes
    as soon as it commits (see the module docstring). Without a running relay for `schema` in
    this process, an ordinary transaction."""
    relay = _relays.get(schema)
    async with pool.acquire() as conn:
        if relay is None:
            async with conn.transaction():
                yield conn
            return
        direct = _Direct(conn, schema)
        token = _direct.set(direct)
        try:
            async with conn.transaction():
                yield conn
        finally:
            _direct.reset(token)
        relay.publish_committed(direct.rows)  # reached only when the transaction committed


@contextlib.contextmanager
def relayed() -> Iterator[None]:
    """Inside `transaction()`: rows written here are left to the relay (for code in a savepoint
    that may roll back: its rows must not be published before the transaction commits)."""
    token = _direct.set(None)
    try:
        yield
    finally:
        _direct.reset(token)


def _channel(schema: str) -> str:
    return f"{schema}_outbox"


_Params = tuple[uuid.UUID, str, str, str, str]  # an outbox insert's: event id, topic, key, ...


def _insert_statement(
    schema: str, first_parameter: int = 1, *, send_on_commit: bool = False, only_if: str = ""
) -> str:
    """`INSERT INTO <schema>.outbox ...` with numbered parameters from `first_parameter` (event id,
    topic, key, payload, headers; then, with `send_on_commit`, the grace in seconds before a
    relay may take the row, and the new row's id is returned). With `only_if` (an SQL condition)
    the row is inserted only where it holds."""
    p = [f"${first_parameter + i}" for i in range(6)]
    columns = "event_id, topic, key, payload, headers"
    values = f"{p[0]}::uuid, {p[1]}::text, {p[2]}::text, {p[3]}::jsonb, {p[4]}::jsonb"
    if send_on_commit:
        columns += ", relay_after"
        values += f", now() + make_interval(secs => {p[5]})"
    where = f" WHERE {only_if}" if only_if else ""
    returning = " RETURNING id" if send_on_commit else ""
    return f"INSERT INTO {schema}.outbox ({columns}) SELECT {values}{where}{returning}"


def _prepare(topic: str, key: str, event: Event) -> tuple[_Params, dict[str, str]]:
    """An outbox insert's parameters, with the trace context of what caused the event (the
    current one, unless `shared.telemetry.causes` names another: an event handled in a batch,
    a run's own trace), and the Kafka headers its message carries (captured once for both; the
    relay publishes the stored headers as they are, so the consumer continues this context)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=cause_of(event.event_id, event.correlation_id))
    params = (event.event_id, topic, key, event.model_dump_json(), json.dumps(carrier))
    return params, _message_headers(carrier, event.correlation_id)


def _message_headers(carrier: dict[str, str], correlation_id: str | None) -> dict[str, str]:
    """A message's Kafka headers: the writer's trace context, the content type, the correlation."""
    return {**carrier, "content-type": "application/json", "correlation_id": correlation_id or ""}


def _sent_on_commit(row_id: int, params: _Params, headers: dict[str, str]) -> OutboxRow:
    _, topic, key, payload, _ = params
    return OutboxRow(row_id, topic, key, payload, headers)


async def execute_with_event(
    pool: asyncpg.Pool,
    schema: str,
    writes: str,
    args: Sequence[object],
    event: tuple[str, str, Event],
    *,
    only_if: str = "",
) -> bool:
    """Run `writes` (a `WITH ...` clause of the writer's own statements, numbering its parameters
    from $1, `args`) and the outbox insert of `event` (topic, key, event) as one statement: one
    round trip and a transaction of its own, so both commit or neither. With a relay for `schema`
    running in this process, the event is published when the statement returns, as in
    `transaction()`.

    With `only_if`, an SQL condition over the `WITH` clause's names, the event is written only
    where it holds (the writes must make the same check: they run either way). Returns whether
    the event was written."""
    params, headers = _prepare(*event)
    relay = _relays.get(schema)
    statement = writes + _insert_statement(
        schema, len(args) + 1, send_on_commit=relay is not None, only_if=only_if
    )
    if relay is None:
        return await pool.execute(statement, *args, *params) == "INSERT 0 1"
    row_id = await pool.fetchval(statement, *args, *params, RELAY_GRACE_SECONDS)
    if row_id is None:
        return False
    relay.publish_committed([_sent_on_commit(row_id, params, headers)])
    return True


def _direct_for(conn: Connection, schema: str) -> _Direct | None:
    direct = _direct.get()
    return (
        direct if direct is not None and direct.conn is conn and direct.schema == schema else None
    )


async def enqueue_many(conn: Connection, schema: str, events: list[tuple[str, str, Event]]) -> None:
    """Add several (topic, key, event) to `schema`'s outbox in one statement, in order."""
    if not events:
        return
    prepared = [_prepare(topic, key, event) for topic, key, event in events]
    columns = [list(column) for column in zip(*(params for params, _ in prepared), strict=True)]
    direct = _direct_for(conn, schema)
    if direct is None:
        await conn.execute(
            f"INSERT INTO {schema}.outbox (event_id, topic, key, payload, headers)"  # noqa: S608
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[])",
            *columns,
        )
        return
    inserted = await conn.fetch(
        f"INSERT INTO {schema}.outbox (event_id, topic, key, payload, headers, relay_after)"  # noqa: S608
        " SELECT e.*, now() + make_interval(secs => $6) FROM unnest("
        "$1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[]) AS e"
        " RETURNING id, event_id",
        *columns,
        RELAY_GRACE_SECONDS,
    )
    ids = {r["event_id"]: r["id"] for r in inserted}
    direct.rows += [
        _sent_on_commit(ids[params[0]], params, headers) for params, headers in prepared
    ]


async def enqueue(conn: Connection, schema: str, topic: str, key: str, event: Event) -> None:
    """Add `event` to `schema`'s outbox inside the caller's transaction. Inside `transaction()`
    this process publishes it on commit; otherwise a trigger wakes the relay on commit."""
    if _direct_for(conn, schema) is not None:
        await enqueue_many(conn, schema, [(topic, key, event)])
    else:
        params, _ = _prepare(topic, key, event)
        await conn.execute(_insert_statement(schema), *params)


class Producer(Protocol):
    """What a relay needs of a Kafka producer (`AIOKafkaProducer`, or a fake): `send` takes the
    messages in order and returns a future that resolves when the broker has acknowledged one."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, *, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


async def _nothing_to_mark() -> None:
    pass


@dataclass(frozen=True)
class Claim:
    """The rows a relay took to publish, in id order (none while another relay publishes the
    schema), and how to mark them published while it still holds them."""

    rows: list[OutboxRow]
    mark_published: Callable[[], Awaitable[None]] = _nothing_to_mark


class OutboxTable(Protocol):
    """A schema's outbox as a relay reads and marks it (`PostgresOutboxTable`, or a fake)."""

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever a transaction that wrote rows commits, until `unlisten`."""
        ...

    async def unlisten(self) -> None: ...

    def claim(self, limit: int) -> contextlib.AbstractAsyncContextManager[Claim]:
        """Up to `limit` rows due for a relay (unpublished, and past their `relay_after`), held
        by this relay until the block ends; another relay claims none meanwhile."""
        ...

    async def mark_published(self, ids: list[int]) -> None: ...


class PostgresOutboxTable:
    """`schema`'s outbox table in `pool`, its NOTIFY heard on a connection of its own (`dsn`)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, dsn: str) -> None:
        self._pool = pool
        self._schema = schema
        self._dsn = dsn
        self._listener: asyncpg.Connection | None = None
        self._wake: Callable[[], None] = lambda: None
        self._listening = False
        self._relisten: asyncio.Task[None] | None = None
        self._marking = (
            f"UPDATE {schema}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])"  # noqa: S608
        )
        self._backlog = (
            f"WITH pending AS (SELECT count(*) AS n, min(id) AS first FROM {schema}.outbox"  # noqa: S608
            " WHERE published_at IS NULL)"
            " SELECT pending.n, coalesce(extract(epoch FROM now() - o.created_at), 0)::float8"
            f" FROM pending LEFT JOIN {schema}.outbox o ON o.id = pending.first"
        )

    async def backlog(self) -> tuple[int, float]:
        """Unpublished rows, and the oldest one's age in seconds (0 when none)."""
        row = await self._pool.fetchrow(self._backlog)
        assert row is not None
        return int(row[0]), float(row[1])

    async def listen(self, wake: Callable[[], None]) -> None:
        self._wake, self._listening = wake, True
        await self._connect_listener()

    async def unlisten(self) -> None:
        self._listening = False
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    async def _connect_listener(self) -> None:
        listener = await asyncpg.connect(self._dsn)
        await listener.add_listener(_channel(self._schema), lambda *_: self._wake())
        listener.add_termination_listener(self._lost)
        self._listener = listener

    def _lost(self, _: object) -> None:
        """The LISTEN connection is gone (PostgreSQL restarted, the backend was terminated):
        connect again, or every row would wait for the poll from now on."""
        if self._listening and (self._relisten is None or self._relisten.done()):
            log.warning("the %s outbox's LISTEN connection was lost; listening again", self._schema)
            self._relisten = asyncio.create_task(self._listen_again())

    async def _listen_again(self) -> None:
        pause = LISTEN_RETRY_SECONDS
        while self._listening:
            try:
                await self._connect_listener()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listening to the %s outbox failed (%s); retrying", self._schema, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, LISTEN_RETRY_MAX_SECONDS)
                continue
            self._wake()  # rows committed while nobody listened
            return

    @contextlib.asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[Claim]:
        schema = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", schema):
                yield Claim([])  # another relay instance is publishing this schema's outbox
                return
            records = await conn.fetch(
                f"SELECT id, topic, key, payload, headers FROM {schema}.outbox"  # noqa: S608
                " WHERE published_at IS NULL AND (relay_after IS NULL OR relay_after <= now())"
                " ORDER BY id LIMIT $1",
                limit,
            )
            rows = [
                OutboxRow(
                    r["id"], r["topic"], r["key"], r["payload"],
                    _message_headers(
                        json.loads(r["headers"]), json.loads(r["payload"]).get("correlation_id")
                    ),
                )
                for r in records
            ]  # fmt: skip

            async def mark() -> None:
                await conn.execute(self._marking, [row.id for row in rows])

            yield Claim(rows, mark)

    async def mark_published(self, ids: list[int]) -> None:
        await self._pool.execute(self._marking, ids)


class Relay:
    """Publishes `schema`'s outbox rows through `producer`: those its process's transactions hand
    it on commit, and the others, read from `table`, when woken (polling as a safety net)."""

    def __init__(
        self,
        table: OutboxTable,
        producer: Producer,
        schema: str,
        *,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        settle_seconds: float = 0.01,
        backlog: Backlog | None = None,
    ) -> None:
        self._table = table
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._settle_seconds = settle_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # straight after commit: rows to send, sends awaiting their acknowledgement, ids to mark
        self._committed: list[OutboxRow] = []
        self._committed_wake = asyncio.Event()
        self._acknowledging: set[asyncio.Task[None]] = set()
        self._acknowledged: list[int] = []
        self._acknowledged_wake = asyncio.Event()
        self._direct_tasks: list[asyncio.Task[None]] = []
        # metrics: rows the broker took (children looked up once), the backlog sampled now and then
        self._published_direct = OUTBOX_PUBLISHED.labels(schema, "direct")
        self._published_relayed = OUTBOX_PUBLISHED.labels(schema, "relay")
        self._backlog = backlog
        self._backlog_rows = OUTBOX_BACKLOG.labels(schema)
        self._backlog_age = OUTBOX_OLDEST_AGE.labels(schema)
        self._next_sample = 0.0

    async def start(self) -> None:
        await self._producer.start()
        await self._table.listen(self._wake.set)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")
        self._direct_tasks = [
            asyncio.create_task(self._send_committed(), name=f"outbox-send-{self._schema}"),
            asyncio.create_task(self._mark_acknowledged(), name=f"outbox-mark-{self._schema}"),
        ]
        _relays[self._schema] = self

    async def stop(self) -> None:
        if _relays.get(self._schema) is self:
            del _relays[self._schema]
        await self._drain()
        for task in [*self._direct_tasks, *([self._task] if self._task else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._table.unlisten()
        await self._producer.stop()

    async def _drain(self, timeout: float = 5.0) -> None:
        """On stop: send what was committed and mark what the broker took (what is left, a relay
        publishes after RELAY_GRACE_SECONDS)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                rows, self._committed = self._committed, []
                await self._send_rows(rows)
                await asyncio.gather(*self._acknowledging, return_exceptions=True)
                ids, self._acknowledged = self._acknowledged, []
                await self._mark(ids)

    def publish_committed(self, rows: list[OutboxRow]) -> None:
        """Publish rows whose transaction just committed, after those handed over before."""
        if rows:
            self._committed += rows
            self._committed_wake.set()

    async def _send_committed(self) -> None:
        while True:
            await self._committed_wake.wait()
            if self._settle_seconds:  # as for NOTIFY: the writer answers its caller first
                await asyncio.sleep(self._settle_seconds)
            self._committed_wake.clear()
            rows, self._committed = self._committed, []
            await self._send_rows(rows)

    async def _send_rows(self, rows: list[OutboxRow]) -> None:
        """Hand rows to the producer in order; their acknowledgements are awaited aside, so the
        next rows need not wait for them."""
        if not rows:
            return
        try:
            futures = [await self._send(r.topic, r.key, r.payload, r.headers) for r in rows]
        except Exception:  # a relay publishes them after their grace
            log.exception("publishing %d %s outbox rows failed", len(rows), self._schema)
            return
        task = asyncio.create_task(self._await_acks([r.id for r in rows], futures))
        self._acknowledging.add(task)
        task.add_done_callback(self._acknowledging.discard)

    async def _await_acks(self, ids: list[int], futures: list[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.gather(*futures)
        except Exception:  # a relay publishes them after their grace
            log.exception("the broker did not take %d %s outbox rows", len(ids), self._schema)
            return
        self._acknowledged += ids
        self._acknowledged_wake.set()
        self._published_direct.inc(len(ids))

    async def _mark_acknowledged(self) -> None:
        """Mark published rows in batches: one statement for what was acknowledged meanwhile."""
        while True:
            await self._acknowledged_wake.wait()
            self._acknowledged_wake.clear()
            ids, self._acknowledged = self._acknowledged, []
            if not await self._mark(ids):
                await asyncio.sleep(self._poll_seconds)

    async def _mark(self, ids: list[int]) -> bool:
        if not ids:
            return True
        try:
            await self._table.mark_published(ids)
        except Exception:  # unmarked rows are published again after their grace: harmless
            log.exception("marking %d %s outbox rows failed", len(ids), self._schema)
            return False
        return True

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
            await self._sample_backlog()
            if published >= self._batch_size:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
                # Let the request that wrote the row answer its caller first, and let more rows
                # arrive, so they go out in one batch; events are not on a caller's critical path.
                await asyncio.sleep(self._settle_seconds)

    async def _sample_backlog(self) -> None:
        """Count the unpublished rows for the metrics, at most every BACKLOG_SAMPLE_SECONDS."""
        now = time.monotonic()
        if self._backlog is None or now < self._next_sample:
            return
        self._next_sample = now + BACKLOG_SAMPLE_SECONDS
        try:
            rows, age = await self._backlog()
        except Exception:  # a metric is not worth a failed relay round
            log.warning("counting the %s outbox backlog failed", self._schema, exc_info=True)
            return
        self._backlog_rows.set(rows)
        self._backlog_age.set(age)

    async def publish_batch(self) -> int:
        """Publish up to one batch of pending rows; return how many were published."""
        async with self._table.claim(self._batch_size) as claim:
            if not claim.rows:
                return 0
            pending = [await self._send(r.topic, r.key, r.payload, r.headers) for r in claim.rows]
            await asyncio.gather(*pending)
            await claim.mark_published()
        self._published_relayed.inc(len(claim.rows))
        return len(claim.rows)

    async def _send(
        self, topic: str, key: str | None, payload: str, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        """Hand one row to the producer (in order); the returned future resolves when the broker
        has acknowledged it."""
        future: asyncio.Future[Any] = await self._producer.send(
            topic,
            value=payload.encode(),
            key=key.encode() if key else None,
            headers=[(name, value.encode()) for name, value in headers.items()],
        )
        return future


class OutboxRelay(Relay):
    """The relay a process runs: for `schema`'s outbox table in `pool`, with a producer of its own
    (`kafka` is shared.broker.producer_options(settings): brokers, security, acks)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: Mapping[str, Any],
        schema: str,
        *,
        dsn: str,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        settle_seconds: float = 0.01,
    ) -> None:
        # Without FastStream's per-message middlewares: the rows already carry their headers
        # (the trace context of the transaction that wrote them).
        table = PostgresOutboxTable(pool, schema, dsn=dsn)
        super().__init__(
            table,
            AIOKafkaProducer(**kafka, client_id=f"{schema}-outbox"),
            schema,
            batch_size=batch_size,
            poll_seconds=poll_seconds,
            settle_seconds=settle_seconds,
            backlog=table.backlog,
        )
