"""The audit log the gateway keeps (`gateway.audit_log`): the entries the services publish on
`audit.recorded` (each written in the transaction of the change it records), stored once by the
consumer group `gateway-audit` that every gateway worker joins, the key changes the gateway makes
itself, inserted in the key change's transaction, and the filtered, newest-first pages
`GET /api/audit` reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, Field

from shared import audit, cursors
from shared.broker import create_broker
from shared.consuming import Route, subscribe_events
from shared.contracts.audit import AuditAction, AuditObject, AuditRecorded
from shared.db import Connection
from shared.settings import Settings
from shared.topics import AUDIT_RECORDED

log = logging.getLogger(__name__)
GROUP_ID = "gateway-audit"
MAX_LIMIT = 200

_COLUMNS = (
    "audit_id, at, actor, action, object_type, object_id, campaign_id, run_id, team, detail,"
    " trace_id, recorded_at"
)


class AuditEntry(BaseModel):
    """One entry of the audit log, as `GET /api/audit` answers it."""

    audit_id: uuid.UUID
    at: datetime = Field(..., description="When the change was made.")
    actor: str | None = Field(None, description="The user who asked, when known.")
    action: AuditAction
    object_type: AuditObject
    object_id: str
    campaign_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    team: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = Field(None, description="The trace of the request that made it.")
    recorded_at: datetime = Field(..., description="When the gateway stored it.")


@dataclass(frozen=True)
class AuditFilters:
    """What a listing keeps: every filter given must hold (None: no filter). `object_id`
    matches the entry's object, campaign or run."""

    action: str | None = None
    actor: str | None = None
    team: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _as_uuid(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def store(db: asyncpg.Pool | Connection, entries: list[AuditRecorded]) -> int:
    """Insert entries in one statement; one already stored (the same `audit_id`, delivered again)
    is left as it is. Returns how many were new."""
    if not entries:
        return 0
    columns = (
        [e.audit_id for e in entries],
        [e.at for e in entries],
        [e.actor for e in entries],
        [e.action for e in entries],
        [e.object_type for e in entries],
        [e.object_id for e in entries],
        [e.campaign_id for e in entries],
        [e.run_id for e in entries],
        [e.team for e in entries],
        [json.dumps(e.detail, default=str) for e in entries],
        [e.trace_id for e in entries],
    )
    status = await db.execute(
        "INSERT INTO gateway.audit_log (audit_id, at, actor, action, object_type, object_id,"
        " campaign_id, run_id, team, detail, trace_id)"
        " SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::uuid[], $8::uuid[], $9::text[], $10::jsonb[], $11::text[])"
        " ON CONFLICT (audit_id) DO NOTHING",
        *columns,
    )
    return int(status.split()[-1])


async def record_key_change(
    conn: Connection,
    action: AuditAction,
    key_id: str,
    *,
    actor: str | None,
    team: str | None,
    detail: dict[str, Any],
) -> None:
    """A key's creation, rotation or revocation, inserted in the caller's transaction (the key
    change's), with the current request's trace id."""
    await store(
        conn,
        [audit.entry(action, "key", key_id, actor=actor, team=team, detail=detail)],
    )


async def list_entries(
    db: asyncpg.Pool | Connection,
    filters: AuditFilters,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[AuditEntry], str | None]:
    """A page of entries, newest first (by `at`, then `audit_id`), and the cursor of the next
    page (None on the last). A cursor this function did not hand out is `Refused`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}")
    after_at, after_id = cursors.decode_time(cursor) if cursor else (None, None)
    object_uuid = _as_uuid(filters.object_id)
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM gateway.audit_log"  # noqa: S608 - a constant column list
        " WHERE ($1::text IS NULL OR action = $1)"
        " AND ($2::text IS NULL OR actor = $2)"
        " AND ($3::text IS NULL OR team = $3)"
        " AND ($4::text IS NULL OR object_id = $4 OR campaign_id = $5 OR run_id = $5)"
        " AND ($6::timestamptz IS NULL OR at >= $6)"
        " AND ($7::timestamptz IS NULL OR at < $7)"
        " AND ($8::timestamptz IS NULL OR (at, audit_id) < ($8, $9::uuid))"
        " ORDER BY at DESC, audit_id DESC LIMIT $10",
        filters.action,
        filters.actor,
        filters.team,
        filters.object_id,
        object_uuid,
        filters.since,
        filters.until,
        after_at,
        after_id,
        limit + 1,
    )
    items = [_entry(row) for row in rows[:limit]]
    more = len(rows) > limit
    return items, cursors.encode(items[-1].at, items[-1].audit_id) if more else None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        audit_id=row["audit_id"], at=row["at"], actor=row["actor"], action=row["action"],
        object_type=row["object_type"], object_id=row["object_id"],
        campaign_id=row["campaign_id"], run_id=row["run_id"], team=row["team"],
        detail=json.loads(row["detail"]), trace_id=row["trace_id"],
        recorded_at=row["recorded_at"],
    )  # fmt: skip


class AuditConsumer:
    """Stores what arrives on `audit.recorded` in consumer group `gateway-audit`: every gateway
    worker and replica joins it, so each record is handled by one of them (and, after a
    rebalance or a crash, perhaps again: the insert ignores an entry stored already). A record
    that is not an `AuditRecorded` is dead-lettered (`shared.consuming`).

    It runs on a Kafka client of its own, started in the background: joining a group waits for
    the group's rebalance (seconds, more while members of stopped workers time out), and the
    gateway serves requests meanwhile; entries wait on the topic until it has joined."""

    def __init__(self, settings: Settings, tracer_provider: TracerProvider) -> None:
        self._settings = settings
        self._tracer_provider = tracer_provider
        self._pool: asyncpg.Pool | None = None
        self._broker: KafkaBroker | None = None
        self._starting: asyncio.Task[None] | None = None

    def start(self, pool: asyncpg.Pool) -> None:
        """Join the group and store entries into `pool`, from now on, in the background."""
        self._pool = pool
        broker = create_broker(
            self._settings, client_id="gateway-audit", tracer_provider=self._tracer_provider
        )
        tracer = self._tracer_provider.get_tracer("gateway")
        subscribe_events(
            broker,
            self._settings,
            group_id=GROUP_ID,
            routes={
                AUDIT_RECORDED.name: Route(
                    AuditRecorded, self.store_one, key=_object_of, handle_many=self.store_many
                )
            },
            tracer=tracer,
            background=True,  # nobody waits on an entry: poll the broker rarely when idle
        )
        self._broker = broker
        self._starting = asyncio.create_task(self._join(broker), name="audit-log-consumer")

    async def _join(self, broker: KafkaBroker) -> None:
        try:
            await broker.start()
        except Exception:
            log.exception("the audit log's consumer did not start; entries wait on the topic")
            raise

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._starting is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._starting
        if self._broker is not None:
            await self._broker.stop()

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:  # transient: the batch is fetched again after a pause
            raise ConnectionError("the gateway's database pool is not open yet")
        return self._pool

    async def store_many(self, entries: list[AuditRecorded]) -> None:
        await store(self._db(), entries)

    async def store_one(self, entry: AuditRecorded) -> None:
        await store(self._db(), [entry])


def _object_of(entry: AuditRecorded) -> str:
    return entry.object_id
