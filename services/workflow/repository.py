"""PostgreSQL access for workflow runs, steps, waits and signals (the `workflow` schema).

The engine writes through a `RunStore` (`PostgresRuns` here, a fake in unit tests): a transaction
in which a run changes only with its row locked (`lock_run`), so concurrent events for one run (a
completion, a timer, a cancel) are applied one after the other, and the events a change causes go
to the outbox in the same transaction. The reads behind the API and the timers are functions.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from services.workflow.domain.machine import Run, RunContext
from shared import outbox
from shared.contracts.common import DEFAULT_TEAM, Event
from shared.db import Connection

SCHEMA = "workflow"
RUN_COLUMNS = """
    run_id, workflow_type, definition_version, status, current_state, params, context, visit,
    attempt, failed_state, current_step_id, intent_id, idempotency_key, correlation_id,
    created_by, team, error, wake_at, created_at, updated_at, finished_at, version
"""


@dataclass(frozen=True)
class StoredRun:
    """A run row: the machine's view of it plus the engine's bookkeeping."""

    run: Run
    workflow_type: str
    definition_version: int
    version: int
    current_step_id: int | None
    correlation_id: str | None
    wake_at: datetime | None
    record: asyncpg.Record
    intent_id: uuid.UUID | None = None  # the detected intent that started it, if one did
    team: str = DEFAULT_TEAM

    @property
    def run_id(self) -> uuid.UUID:
        return uuid.UUID(self.run.run_id)


def _stored(record: asyncpg.Record) -> StoredRun:
    run = Run(
        run_id=str(record["run_id"]),
        status=record["status"],
        state=record["current_state"],
        params=json.loads(record["params"]),
        context=RunContext.from_json(json.loads(record["context"])),
        visit=record["visit"],
        attempt=record["attempt"],
        failed_state=record["failed_state"],
        error=record["error"],
    )
    return StoredRun(
        run=run,
        workflow_type=record["workflow_type"],
        definition_version=record["definition_version"],
        version=record["version"],
        current_step_id=record["current_step_id"],
        correlation_id=record["correlation_id"],
        wake_at=record["wake_at"],
        record=record,
        intent_id=record["intent_id"],
        team=record["team"],
    )


@dataclass(frozen=True)
class NewRun:
    run_id: uuid.UUID
    workflow_type: str
    version: int
    params: dict[str, Any]
    intent_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    created_by: str | None = None
    team: str = DEFAULT_TEAM


@dataclass(frozen=True)
class RunUpdate:
    run: Run
    wake_at: datetime | None
    current_step_id: int | None


@dataclass(frozen=True)
class NewStep:
    run: Run
    action: str
    input: dict[str, Any]
    deadline_at: datetime


@dataclass(frozen=True)
class StepOutcome:
    run_id: uuid.UUID
    step_id: int
    status: str  # succeeded, failed, timed_out
    output: dict[str, Any] | None = None
    error: str | None = None


class RunTransaction(Protocol):
    """What the engine reads and writes in one transaction (`PostgresRunTransaction`, or a fake).
    Nothing it writes is seen by others, and no event it enqueues is sent, unless it commits."""

    async def insert_runs(self, runs: list[NewRun]) -> set[uuid.UUID]:
        """Create runs (status `pending`, no state yet); returns the ids created (a run whose
        id, intent id or idempotency key already has one is not)."""
        ...

    async def find_by_idempotency_key(self, key: str, team: str) -> StoredRun | None: ...

    async def lock_run(self, run_id: uuid.UUID) -> StoredRun | None:
        """The run, locked until the transaction ends; None when there is no such run."""
        ...

    async def lock_runs(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredRun]:
        """Several runs, locked until the transaction ends; missing ids are absent."""
        ...

    async def save_runs(self, updates: list[RunUpdate]) -> dict[uuid.UUID, int]:
        """Store runs' new states; returns each run's new version (the progress sequence)."""
        ...

    async def insert_steps(self, steps: list[NewStep]) -> dict[uuid.UUID, int]:
        """Open one step attempt per run (at most one each); returns each run's new step id."""
        ...

    async def finish_steps(self, outcomes: list[StepOutcome]) -> set[int]:
        """Close step attempts that are still open; returns the ids closed now (the others were
        closed already: duplicate or late completions)."""
        ...

    async def abandon_open_step(self, run_id: uuid.UUID) -> None: ...

    async def open_wait(self, run: Run, signal: str, deadline_at: datetime | None) -> None: ...

    async def close_wait(
        self, run_id: uuid.UUID, status: str, signal_id: int | None = None
    ) -> None: ...

    async def store_signal(
        self, run_id: uuid.UUID, name: str, payload: dict[str, Any], event_id: uuid.UUID
    ) -> bool:
        """Keep a signal until a wait takes it; False when this event was stored already."""
        ...

    async def take_signal(self, run_id: uuid.UUID, name: str) -> tuple[int, dict[str, Any]] | None:
        """Consume the oldest unconsumed signal `name` of the run, if one has arrived."""
        ...

    async def enqueue(self, events: list[tuple[str, str, Event]]) -> None:
        """Write (topic, key, event) to the outbox, in order, to be sent when this commits."""
        ...


class RunStore(Protocol):
    """Where the engine keeps runs (`PostgresRuns`, or a fake)."""

    def transaction(self) -> AbstractAsyncContextManager[RunTransaction]: ...


@dataclass(frozen=True)
class PostgresRuns:
    """The `workflow` schema in `pool`; its outbox rows are sent as soon as a transaction commits
    (`outbox.transaction`)."""

    pool: asyncpg.Pool

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[RunTransaction]:
        async with outbox.transaction(self.pool, SCHEMA) as conn:
            yield PostgresRunTransaction(conn)


@dataclass(frozen=True)
class PostgresRunTransaction:
    """`RunTransaction` on a connection inside a transaction."""

    conn: Connection

    async def insert_runs(self, runs: list[NewRun]) -> set[uuid.UUID]:
        if not runs:
            return set()
        rows = await self.conn.fetch(
            """
            INSERT INTO workflow.runs
                (run_id, workflow_type, definition_version, status, params, intent_id,
                 idempotency_key, correlation_id, created_by, team)
            SELECT r.run_id, r.workflow_type, r.version, 'pending', r.params::jsonb, r.intent_id,
                   r.idempotency_key, r.correlation_id, r.created_by, r.team
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::uuid[], $6::text[],
                        $7::text[], $8::text[], $9::text[])
                 AS r(run_id, workflow_type, version, params, intent_id, idempotency_key,
                      correlation_id, created_by, team)
            ON CONFLICT DO NOTHING
            RETURNING run_id
            """,
            [r.run_id for r in runs],
            [r.workflow_type for r in runs],
            [r.version for r in runs],
            [json.dumps(r.params) for r in runs],
            [r.intent_id for r in runs],
            [r.idempotency_key for r in runs],
            [r.correlation_id for r in runs],
            [r.created_by for r in runs],
            [r.team for r in runs],
        )
        return {row["run_id"] for row in rows}

    async def find_by_idempotency_key(self, key: str, team: str) -> StoredRun | None:
        record = await self.conn.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM workflow.runs"  # noqa: S608
            " WHERE team = $2 AND idempotency_key = $1",
            key,
            team,
        )
        return None if record is None else _stored(record)

    async def lock_run(self, run_id: uuid.UUID) -> StoredRun | None:
        record = await self.conn.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM workflow.runs WHERE run_id = $1 FOR UPDATE",  # noqa: S608
            run_id,
        )
        return None if record is None else _stored(record)

    async def lock_runs(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredRun]:
        # in id order, so two engines locking overlapping sets cannot deadlock
        records = await self.conn.fetch(
            f"SELECT {RUN_COLUMNS} FROM workflow.runs WHERE run_id = ANY($1::uuid[])"  # noqa: S608
            " ORDER BY run_id FOR UPDATE",
            run_ids,
        )
        return {r["run_id"]: _stored(r) for r in records}

    async def save_runs(self, updates: list[RunUpdate]) -> dict[uuid.UUID, int]:
        if not updates:
            return {}
        rows = await self.conn.fetch(
            """
            UPDATE workflow.runs AS r SET
                status = u.status, current_state = u.state, context = u.context::jsonb,
                visit = u.visit, attempt = u.attempt, failed_state = u.failed_state,
                error = u.error, wake_at = u.wake_at, current_step_id = u.step_id,
                version = r.version + 1, updated_at = now(),
                finished_at = CASE WHEN u.status IN ('succeeded', 'failed', 'cancelled', 'expired')
                                   THEN now() END
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],
                        $7::text[], $8::text[], $9::timestamptz[], $10::bigint[])
                 AS u(run_id, status, state, context, visit, attempt, failed_state, error,
                      wake_at, step_id)
            WHERE r.run_id = u.run_id
            RETURNING r.run_id, r.version
            """,
            [uuid.UUID(u.run.run_id) for u in updates],
            [u.run.status for u in updates],
            [u.run.state for u in updates],
            [json.dumps(u.run.context.to_json()) for u in updates],
            [u.run.visit for u in updates],
            [u.run.attempt for u in updates],
            [u.run.failed_state for u in updates],
            [u.run.error for u in updates],
            [u.wake_at for u in updates],
            [u.current_step_id for u in updates],
        )
        return {r["run_id"]: r["version"] for r in rows}

    async def insert_steps(self, steps: list[NewStep]) -> dict[uuid.UUID, int]:
        if not steps:
            return {}
        rows = await self.conn.fetch(
            """
            INSERT INTO workflow.steps (run_id, state, visit, action, attempt, input, deadline_at)
            SELECT run_id, state, visit, action, attempt, input::jsonb, deadline_at
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[],
                        $7::timestamptz[])
                 AS u(run_id, state, visit, action, attempt, input, deadline_at)
            RETURNING id, run_id
            """,
            [uuid.UUID(s.run.run_id) for s in steps],
            [s.run.state for s in steps],
            [s.run.visit for s in steps],
            [s.action for s in steps],
            [s.run.attempt for s in steps],
            [json.dumps(s.input) for s in steps],
            [s.deadline_at for s in steps],
        )
        return {r["run_id"]: r["id"] for r in rows}

    async def finish_steps(self, outcomes: list[StepOutcome]) -> set[int]:
        if not outcomes:
            return set()
        rows = await self.conn.fetch(
            """
            UPDATE workflow.steps AS s
            SET status = u.status, output = u.output::jsonb, error = u.error, completed_at = now()
            FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[])
                 AS u(id, run_id, status, output, error)
            WHERE s.id = u.id AND s.run_id = u.run_id AND s.status = 'requested'
            RETURNING s.id
            """,
            [o.step_id for o in outcomes],
            [o.run_id for o in outcomes],
            [o.status for o in outcomes],
            [None if o.output is None else json.dumps(o.output) for o in outcomes],
            [o.error for o in outcomes],
        )
        return {r["id"] for r in rows}

    async def abandon_open_step(self, run_id: uuid.UUID) -> None:
        await self.conn.execute(
            "UPDATE workflow.steps SET status = 'abandoned', completed_at = now()"
            " WHERE run_id = $1 AND status = 'requested'",
            run_id,
        )

    async def open_wait(self, run: Run, signal: str, deadline_at: datetime | None) -> None:
        await self.conn.execute(
            "INSERT INTO workflow.waits (run_id, state, name, deadline_at) VALUES ($1, $2, $3, $4)",
            uuid.UUID(run.run_id), run.state, signal, deadline_at,
        )  # fmt: skip

    async def close_wait(
        self, run_id: uuid.UUID, status: str, signal_id: int | None = None
    ) -> None:
        await self.conn.execute(
            """
            UPDATE workflow.waits SET status = $2, signal_id = $3, resolved_at = now()
            WHERE run_id = $1 AND status = 'waiting'
            """,
            run_id, status, signal_id,
        )  # fmt: skip

    async def store_signal(
        self, run_id: uuid.UUID, name: str, payload: dict[str, Any], event_id: uuid.UUID
    ) -> bool:
        result = await self.conn.execute(
            """
            INSERT INTO workflow.signals (run_id, name, payload, event_id)
            VALUES ($1, $2, $3::jsonb, $4)
            ON CONFLICT (event_id) DO NOTHING
            """,
            run_id, name, json.dumps(payload), event_id,
        )  # fmt: skip
        return bool(result == "INSERT 0 1")

    async def take_signal(self, run_id: uuid.UUID, name: str) -> tuple[int, dict[str, Any]] | None:
        record = await self.conn.fetchrow(
            """
            UPDATE workflow.signals SET consumed_at = now()
            WHERE id = (
                SELECT id FROM workflow.signals
                WHERE run_id = $1 AND name = $2 AND consumed_at IS NULL
                ORDER BY id LIMIT 1
            )
            RETURNING id, payload
            """,
            run_id, name,
        )  # fmt: skip
        if record is None:
            return None
        return record["id"], json.loads(record["payload"])

    async def enqueue(self, events: list[tuple[str, str, Event]]) -> None:
        await outbox.enqueue_many(self.conn, SCHEMA, events)


# --- reads: the API's views and the timers ----------------------------------------------------


async def get_run(conn: Connection, run_id: uuid.UUID) -> StoredRun | None:
    record = await conn.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM workflow.runs WHERE run_id = $1",  # noqa: S608
        run_id,
    )
    return None if record is None else _stored(record)


async def due_runs(conn: Connection, limit: int) -> list[uuid.UUID]:
    """Runs whose timer has passed: a step deadline, a retry backoff or a wait deadline."""
    rows = await conn.fetch(
        "SELECT run_id FROM workflow.runs WHERE wake_at <= now() ORDER BY wake_at LIMIT $1",
        limit,
    )
    return [r["run_id"] for r in rows]


async def next_wake(conn: Connection) -> datetime | None:
    at: datetime | None = await conn.fetchval("SELECT min(wake_at) FROM workflow.runs")
    return at


async def steps_of(conn: Connection, run_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT id, state, visit, action, attempt, status, input, output, error, requested_at,
               completed_at, deadline_at
        FROM workflow.steps WHERE run_id = $1 ORDER BY id
        """,
        run_id,
    )


async def list_runs(
    conn: Connection,
    *,
    workflow_type: str | None,
    status: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    team: str | None = None,
) -> list[StoredRun]:
    """Newest first; `after` is the (created_at, run_id) of the last run of the previous page;
    only `team`'s runs unless it is None."""
    records = await conn.fetch(
        f"""
        SELECT {RUN_COLUMNS} FROM workflow.runs
        WHERE ($1::text IS NULL OR workflow_type = $1)
          AND ($2::text IS NULL OR status = $2)
          AND ($3::timestamptz IS NULL OR (created_at, run_id) < ($3, $4::uuid))
          AND ($6::text IS NULL OR team = $6)
        ORDER BY created_at DESC, run_id DESC
        LIMIT $5
        """,  # noqa: S608 - the column list is ours
        workflow_type, status, after[0] if after else None, after[1] if after else None, limit,
        team,
    )  # fmt: skip
    return [_stored(r) for r in records]


async def run_team(conn: Connection, run_id: uuid.UUID) -> str | None:
    """The team a run belongs to; None when there is no such run."""
    team: str | None = await conn.fetchval(
        "SELECT team FROM workflow.runs WHERE run_id = $1", run_id
    )
    return team
