"""An in-memory `ActionStore` for unit tests of the action worker: the results table, the outbox's
completions, and the effects the test's actions write, with transactions and savepoints that
undo what their block did when it raises."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg

from shared.action_worker import ActionCall, ActionConnection
from shared.contracts.workflow import WorkflowStepCompleted, WorkflowStepRequested
from shared.db import Connection
from tests.support.fake_transactions import atomic


class DuplicateResult(Exception):
    """A second result for one step visit (the real table's primary key refuses it too)."""


@dataclass
class ActionTables:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    completions: list[WorkflowStepCompleted] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)


class FakeActionStore:
    """What was committed is in `state`; `transactions` counts the transactions begun."""

    def __init__(self) -> None:
        self.state = ActionTables()
        self.transactions = 0

    @property
    def pool(self) -> asyncpg.Pool:
        return cast(asyncpg.Pool, None)  # the tests' actions write through `effect`

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[ActionConnection]:
        self.transactions += 1
        async with atomic(self):
            yield FakeActionConnection(self)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[ActionConnection]:
        yield FakeActionConnection(self)


class FakeActionConnection:
    """Reads and writes the store's current state (a savepoint may have put back another)."""

    def __init__(self, store: FakeActionStore) -> None:
        self._store = store

    @property
    def conn(self) -> Connection:
        return cast(Connection, self)

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        return atomic(self._store)

    def write(self, effect: str) -> None:
        self._store.state.effects.append(effect)

    async def results(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        stored = self._store.state.results
        return {key: stored[key] for key in keys if key in stored}

    async def record(self, results: list[tuple[WorkflowStepRequested, dict[str, Any]]]) -> None:
        for request, output in results:
            if request.idempotency_key in self._store.state.results:
                raise DuplicateResult(request.idempotency_key)
            self._store.state.results[request.idempotency_key] = output

    async def complete(self, completions: list[WorkflowStepCompleted]) -> None:
        self._store.state.completions += completions


def effect(call: ActionCall, what: str) -> None:
    """Write an effect in the action's transaction (a transactional action's `call.conn`)."""
    assert call.conn is not None, "only transactional actions write through call.conn"
    cast(FakeActionConnection, call.conn).write(what)
