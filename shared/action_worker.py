"""Running a service's workflow actions: consume its step requests, perform each step's effect once,
and report the outcome on `workflow.step.completed` through the service's outbox.

A step visit (run, state, visit) is performed at most once, however many copies or attempts of its
request arrive: the result is stored in `<schema>.action_results` in the same transaction as the
effect and the completion event, and a later request for the same visit gets the stored result.
A failed attempt stores nothing, so its retry runs the action again.

Actions that take long (calling a language model for many recipients) set `transactional=False`:
they run outside a transaction, must make their own writes idempotent, and only the result is
recorded atomically with the completion.

The worker reaches its schema through an `ActionStore` (`PostgresActionStore`), so unit tests pass
a fake.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from faststream.kafka import KafkaBroker
from opentelemetry.trace import Tracer
from pydantic import BaseModel, ValidationError

from shared import outbox
from shared.actions import ACTIONS, ActionRegistry, ActionSpec
from shared.consuming import TRANSIENT_ERRORS, Route, subscribe_events
from shared.contracts.common import Event, utcnow
from shared.contracts.workflow import (
    NEEDS_INPUT,
    Question,
    StepError,
    WorkflowStepCompleted,
    WorkflowStepRequested,
)
from shared.db import Connection
from shared.settings import Settings
from shared.topics import WORKFLOW_STEP_COMPLETED, step_request_topic

log = logging.getLogger(__name__)

# The table an owner's schema needs; services create it in a migration.
ACTION_RESULTS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.action_results (
    idempotency_key  text        PRIMARY KEY,     -- run_id:state:visit
    run_id           uuid        NOT NULL,
    action           text        NOT NULL,
    output           jsonb       NOT NULL,
    completed_at     timestamptz NOT NULL DEFAULT now()
)
"""


class ActionFailed(Exception):
    """Raised by an action to fail its step with a code; `retryable=False` fails at once."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = True, question: Question | None = None
    ) -> None:
        super().__init__(message)
        self.error = StepError(code=code, message=message, retryable=retryable, question=question)


def needs_input(question: Question) -> ActionFailed:
    """The step cannot go on until a person answers `question`: the run waits for the answer
    (its deadline expires the run), then the step runs again with it."""
    return ActionFailed(NEEDS_INPUT, question.text, retryable=False, question=question)


@dataclass(frozen=True)
class ActionCall:
    """What an action is given besides its input. `conn` is inside the transaction that records
    the result (None for non-transactional actions, which use `pool`)."""

    request: WorkflowStepRequested
    conn: Connection | None
    pool: asyncpg.Pool


Implementation = Callable[[Any, ActionCall], Awaitable[BaseModel | dict[str, Any]]]


class ActionConnection(Protocol):
    """A connection of an `ActionStore`: inside `transaction()`, or each statement on its own."""

    @property
    def conn(self) -> Connection:
        """What the actions write with."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction: its writes roll back alone when the block raises."""
        ...

    async def results(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored results of the step visits among `keys` that were performed already."""
        ...

    async def record(self, results: list[tuple[WorkflowStepRequested, dict[str, Any]]]) -> None:
        """Store the results of step visits performed now (a visit's result is stored once)."""
        ...

    async def complete(self, completions: list[WorkflowStepCompleted]) -> None:
        """Write completions to the owner's outbox, in order."""
        ...


class ActionStore(Protocol):
    """Where an owner keeps its step visits' results and writes its completions: its schema's
    `action_results` and outbox (`PostgresActionStore`, or a fake)."""

    @property
    def pool(self) -> asyncpg.Pool:
        """What non-transactional actions write with."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[ActionConnection]:
        """A transaction whose completions are sent when it commits."""
        ...

    def connection(self) -> AbstractAsyncContextManager[ActionConnection]:
        """A connection outside a transaction."""
        ...


@dataclass(frozen=True)
class PostgresActionStore:
    """`schema`'s `action_results` and outbox in `pool`."""

    pool: asyncpg.Pool
    schema: str

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[ActionConnection]:
        async with outbox.transaction(self.pool, self.schema) as conn:
            yield _PostgresActionConnection(conn, self.schema)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[ActionConnection]:
        async with self.pool.acquire() as conn:
            yield _PostgresActionConnection(conn, self.schema)


@dataclass(frozen=True)
class _PostgresActionConnection:
    conn: Connection
    schema: str

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        return self.conn.transaction()

    async def results(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        rows = await self.conn.fetch(
            f"SELECT idempotency_key, output FROM {self.schema}.action_results"  # noqa: S608
            " WHERE idempotency_key = ANY($1::text[])",
            keys,
        )
        return {r["idempotency_key"]: json.loads(r["output"]) for r in rows}

    async def record(self, results: list[tuple[WorkflowStepRequested, dict[str, Any]]]) -> None:
        if not results:
            return
        await self.conn.execute(
            f"INSERT INTO {self.schema}.action_results (idempotency_key, run_id, action, output)"  # noqa: S608
            " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[])",
            [r.idempotency_key for r, _ in results],
            [r.run_id for r, _ in results],
            [r.action for r, _ in results],
            [json.dumps(output) for _, output in results],
        )

    async def complete(self, completions: list[WorkflowStepCompleted]) -> None:
        events: list[tuple[str, str, Event]] = [
            (WORKFLOW_STEP_COMPLETED.name, str(c.run_id), c) for c in completions
        ]
        await outbox.enqueue_many(self.conn, self.schema, events)


@dataclass(frozen=True)
class _Registered:
    spec: ActionSpec
    run: Implementation
    transactional: bool


class ActionWorker:
    """The actions one service (`owner`) implements, and the consumer that runs them."""

    def __init__(self, owner: str, schema: str, actions: ActionRegistry = ACTIONS) -> None:
        self.owner = owner
        self.schema = schema
        self._actions = actions
        self._implemented: dict[str, _Registered] = {}

    def implements(
        self, name: str, *, transactional: bool = True
    ) -> Callable[[Implementation], Implementation]:
        spec = self._actions.get(name)
        if spec.owner != self.owner:
            raise ValueError(f"action {name!r} belongs to {spec.owner!r}, not {self.owner!r}")

        def register(fn: Implementation) -> Implementation:
            self._implemented[name] = _Registered(spec, fn, transactional)
            return fn

        return register

    def routes(self, pool: Callable[[], asyncpg.Pool]) -> dict[str, Route[Any]]:
        """The consumer route of this owner's step requests, to subscribe alone (`subscribe`) or
        with the service's other topics in one consumer; `pool` gives the pool once the service
        started."""

        async def handle(request: WorkflowStepRequested) -> None:
            await self.perform(PostgresActionStore(pool(), self.schema), request)

        async def handle_many(requests: list[WorkflowStepRequested]) -> None:
            await self.perform_many(PostgresActionStore(pool(), self.schema), requests)

        route = Route(
            WorkflowStepRequested,
            handle,
            key=lambda request: request.run_id,
            handle_many=handle_many,
        )
        return {step_request_topic(self.owner).name: route}

    def subscribe(
        self, broker: KafkaBroker, settings: Settings, pool: Callable[[], asyncpg.Pool],
        tracer: Tracer | None = None,
    ) -> None:  # fmt: skip
        """Consume this owner's step requests in a consumer group of their own."""
        subscribe_events(
            broker,
            settings,
            group_id=f"{self.owner}.actions",
            routes=self.routes(pool),
            tracer=tracer,
        )

    async def perform_many(self, store: ActionStore, requests: list[WorkflowStepRequested]) -> None:
        """Run a batch of step requests: the transactional ones in one transaction (each action
        in a savepoint of its own), with their results and completions written together."""
        now = utcnow()
        together: list[WorkflowStepRequested] = []
        for request in requests:
            registered = self._implemented.get(request.action)
            late = request.deadline_at is not None and request.deadline_at < now
            if registered is not None and registered.transactional and not late:
                together.append(request)
            else:
                await self.perform(store, request)
        if together:
            await self._perform_in_transaction(store, together)

    async def perform(self, store: ActionStore, request: WorkflowStepRequested) -> None:
        """Run one step request (see the module docstring)."""
        if request.deadline_at is not None and request.deadline_at < utcnow():
            log.info(
                "step %s of run %s is past its deadline; skipped", request.step_id, request.run_id
            )
            return  # the engine has timed this attempt out and will send another
        registered = self._implemented.get(request.action)
        if registered is None:
            error = StepError(
                code="not_implemented",
                message=f"the {self.owner} service does not implement {request.action}",
                retryable=False,
            )
            async with store.transaction() as tx:
                await tx.complete([_completion(request, None, error)])
            return
        if registered.transactional:
            await self._perform_in_transaction(store, [request])
        else:
            await self._perform_outside_transaction(store, registered, request)

    async def _perform_in_transaction(
        self, store: ActionStore, requests: list[WorkflowStepRequested]
    ) -> None:
        """Run transactional step requests in one transaction, each action in a savepoint of its
        own, and write their results and completions in it. A visit performed before (or earlier
        in this batch) is answered with its stored result."""
        async with store.transaction() as tx:
            done = await tx.results([request.idempotency_key for request in requests])
            performed: list[tuple[WorkflowStepRequested, dict[str, Any]]] = []
            completions: list[WorkflowStepCompleted] = []
            for request in requests:
                key = request.idempotency_key
                if key in done:
                    completions.append(_completion(request, done[key], None))
                    continue
                registered = self._implemented[request.action]
                try:
                    # a savepoint: a failed action leaves no effect (nor events of its own)
                    async with tx.savepoint():
                        with outbox.relayed():
                            output = await self._run(
                                registered, request, ActionCall(request, tx.conn, store.pool)
                            )
                except ActionFailed as exc:
                    completions.append(_completion(request, None, exc.error))
                    continue
                done[key] = output
                performed.append((request, output))
                completions.append(_completion(request, output, None))
            await tx.record(performed)
            await tx.complete(completions)

    async def _perform_outside_transaction(
        self, store: ActionStore, registered: _Registered, request: WorkflowStepRequested
    ) -> None:
        key = request.idempotency_key
        async with store.connection() as db:
            stored = (await db.results([key])).get(key)
            if stored is not None:  # performed before: its result again
                await db.complete([_completion(request, stored, None)])
                return
        try:
            output = await self._run(registered, request, ActionCall(request, None, store.pool))
        except ActionFailed as exc:
            async with store.transaction() as tx:
                await tx.complete([_completion(request, None, exc.error)])
            return
        async with store.transaction() as tx:
            await tx.record([(request, output)])
            await tx.complete([_completion(request, output, None)])

    async def _run(
        self, registered: _Registered, request: WorkflowStepRequested, call: ActionCall
    ) -> dict[str, Any]:
        spec = registered.spec
        try:
            given = spec.input.model_validate(request.input)
        except ValidationError as exc:
            raise ActionFailed("invalid_input", str(exc), retryable=False) from None
        try:
            result = await registered.run(given, call)
        except ActionFailed:
            raise
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # a bug or an unexpected answer: let the engine retry, then fail
            log.exception("action %s failed", request.action)
            raise ActionFailed("internal", f"{type(exc).__name__}: {exc}") from exc
        try:
            return spec.output.model_validate(
                result.model_dump() if isinstance(result, BaseModel) else result
            ).model_dump(mode="json")
        except ValidationError as exc:
            raise ActionFailed("invalid_output", str(exc), retryable=False) from None


def _completion(
    request: WorkflowStepRequested, output: dict[str, Any] | None, error: StepError | None
) -> WorkflowStepCompleted:
    return WorkflowStepCompleted(
        correlation_id=request.correlation_id,
        run_id=request.run_id,
        step_id=request.step_id,
        action=request.action,
        attempt=request.attempt,
        ok=error is None,
        output=output or {},
        error=error,
    )
