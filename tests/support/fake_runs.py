"""An in-memory `RunStore` for unit tests of the workflow engine: runs, steps, waits, signals and
the outbox as plain Python objects, with the guarantees the engine relies on (a step closes once,
a signal event is stored once, a transaction that raises leaves nothing behind)."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import asyncpg

from services.workflow.domain.machine import Run
from services.workflow.repository import (
    NewRun,
    NewStep,
    RunTransaction,
    RunUpdate,
    StepOutcome,
    StoredRun,
)
from shared.contracts.common import Event
from tests.support.fake_transactions import atomic


@dataclass
class FakeStep:
    step_id: int
    run_id: uuid.UUID
    state: str | None
    visit: int
    action: str
    attempt: int
    input: dict[str, Any]
    deadline_at: datetime
    status: str = "requested"
    output: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class FakeWait:
    run_id: uuid.UUID
    state: str | None
    name: str
    deadline_at: datetime | None
    status: str = "waiting"
    signal_id: int | None = None


@dataclass
class FakeSignal:
    signal_id: int
    run_id: uuid.UUID
    name: str
    payload: dict[str, Any]
    event_id: uuid.UUID
    consumed: bool = False


@dataclass
class RunTables:
    runs: dict[uuid.UUID, StoredRun] = field(default_factory=dict)
    keys: dict[uuid.UUID, tuple[uuid.UUID | None, tuple[str, str] | None]] = field(
        default_factory=dict
    )
    steps: dict[int, FakeStep] = field(default_factory=dict)
    waits: list[FakeWait] = field(default_factory=list)
    signals: list[FakeSignal] = field(default_factory=list)
    outbox: list[tuple[str, str, Event]] = field(default_factory=list)
    last_id: int = 0

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id


class FakeRunStore:
    """What the engine committed is in `state`; `fail_enqueue` makes writing events raise."""

    def __init__(self) -> None:
        self.state = RunTables()
        self.fail_enqueue = False

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[RunTransaction]:
        async with atomic(self):
            yield FakeRunTransaction(self.state, self.fail_enqueue)

    # --- what tests read -----------------------------------------------------------------------

    def snapshot(self) -> RunTables:
        """A copy of everything stored now, to compare with later."""
        return copy.deepcopy(self.state)

    def run(self, run_id: uuid.UUID) -> StoredRun:
        return self.state.runs[run_id]

    def steps(self, run_id: uuid.UUID) -> list[FakeStep]:
        return [s for s in self.state.steps.values() if s.run_id == run_id]

    def waits(self, run_id: uuid.UUID) -> list[FakeWait]:
        return [w for w in self.state.waits if w.run_id == run_id]

    def events(self) -> list[Event]:
        return [event for _, _, event in self.state.outbox]


@dataclass
class FakeRunTransaction:
    """`RunTransaction` over the tables; `FakeRunStore.transaction` undoes it when it raises."""

    t: RunTables
    fail_enqueue: bool

    async def insert_runs(self, runs: list[NewRun]) -> set[uuid.UUID]:
        created: set[uuid.UUID] = set()
        for new in runs:
            taken = self.t.keys.values()
            if new.run_id in self.t.runs or any(
                (new.intent_id is not None and new.intent_id == intent_id)
                or (new.idempotency_key is not None and (new.team, new.idempotency_key) == key)
                for intent_id, key in taken
            ):
                continue
            run = Run(run_id=str(new.run_id), status="pending", state=None, params=new.params)
            self.t.runs[new.run_id] = StoredRun(
                run=run,
                workflow_type=new.workflow_type,
                definition_version=new.version,
                version=0,
                current_step_id=None,
                correlation_id=new.correlation_id,
                wake_at=None,
                record=cast(asyncpg.Record, None),  # the API's view of a row: not the engine's
                intent_id=new.intent_id,
                team=new.team,
            )
            key = (new.team, new.idempotency_key) if new.idempotency_key is not None else None
            self.t.keys[new.run_id] = (new.intent_id, key)
            created.add(new.run_id)
        return created

    async def find_by_idempotency_key(self, key: str, team: str) -> StoredRun | None:
        found = [run_id for run_id, (_, k) in self.t.keys.items() if k == (team, key)]
        return self.t.runs[found[0]] if found else None

    async def lock_run(self, run_id: uuid.UUID) -> StoredRun | None:
        return self.t.runs.get(run_id)

    async def lock_runs(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredRun]:
        return {run_id: self.t.runs[run_id] for run_id in sorted(run_ids) if run_id in self.t.runs}

    async def save_runs(self, updates: list[RunUpdate]) -> dict[uuid.UUID, int]:
        versions: dict[uuid.UUID, int] = {}
        for update in updates:
            run_id = uuid.UUID(update.run.run_id)
            stored = self.t.runs[run_id]
            self.t.runs[run_id] = replace(
                stored,
                run=update.run,
                wake_at=update.wake_at,
                current_step_id=update.current_step_id,
                version=stored.version + 1,
            )
            versions[run_id] = stored.version + 1
        return versions

    async def insert_steps(self, steps: list[NewStep]) -> dict[uuid.UUID, int]:
        ids: dict[uuid.UUID, int] = {}
        for new in steps:
            run, step_id = new.run, self.t.next_id()
            self.t.steps[step_id] = FakeStep(
                step_id, uuid.UUID(run.run_id), run.state, run.visit, new.action, run.attempt,
                new.input, new.deadline_at,
            )  # fmt: skip
            ids[uuid.UUID(run.run_id)] = step_id
        return ids

    async def finish_steps(self, outcomes: list[StepOutcome]) -> set[int]:
        closed: set[int] = set()
        for outcome in outcomes:
            step = self.t.steps.get(outcome.step_id)
            if step is None or step.run_id != outcome.run_id or step.status != "requested":
                continue
            step.status, step.output, step.error = outcome.status, outcome.output, outcome.error
            closed.add(step.step_id)
        return closed

    async def abandon_open_step(self, run_id: uuid.UUID) -> None:
        for step in self.t.steps.values():
            if step.run_id == run_id and step.status == "requested":
                step.status = "abandoned"

    async def open_wait(self, run: Run, signal: str, deadline_at: datetime | None) -> None:
        self.t.waits.append(FakeWait(uuid.UUID(run.run_id), run.state, signal, deadline_at))

    async def close_wait(
        self, run_id: uuid.UUID, status: str, signal_id: int | None = None
    ) -> None:
        for wait in self.t.waits:
            if wait.run_id == run_id and wait.status == "waiting":
                wait.status, wait.signal_id = status, signal_id

    async def store_signal(
        self, run_id: uuid.UUID, name: str, payload: dict[str, Any], event_id: uuid.UUID
    ) -> bool:
        if any(s.event_id == event_id for s in self.t.signals):
            return False
        self.t.signals.append(FakeSignal(self.t.next_id(), run_id, name, payload, event_id))
        return True

    async def take_signal(self, run_id: uuid.UUID, name: str) -> tuple[int, dict[str, Any]] | None:
        for signal in self.t.signals:  # oldest first
            if signal.run_id == run_id and signal.name == name and not signal.consumed:
                signal.consumed = True
                return signal.signal_id, signal.payload
        return None

    async def enqueue(self, events: list[tuple[str, str, Event]]) -> None:
        if self.fail_enqueue:
            raise ConnectionError("the outbox insert failed")
        self.t.outbox += events
