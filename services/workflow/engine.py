"""The workflow engine: applies what happens to a run (a start, a step completion, a signal, a
timer, a cancel or retry) in one PostgreSQL transaction with the run's row locked, and writes the
events it causes to the outbox in the same transaction.

So a state change and its events commit or fail together, and a duplicate or late event finds the
run moved on and changes nothing.
"""

from __future__ import annotations

import logging
import random as random_module
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.workflow import repository
from services.workflow.domain.definitions import Definition, DefinitionRegistry
from services.workflow.domain.machine import (
    AwaitSignal,
    Finish,
    Machine,
    NotApplicable,
    RequestStep,
    RetryLater,
    Transition,
)
from services.workflow.repository import StoredRun
from shared import outbox
from shared.actions import ActionRegistry
from shared.db import Connection
from shared.events import (
    StepError,
    WorkflowRunChanged,
    WorkflowSignal,
    WorkflowStepCompleted,
    WorkflowStepRequested,
    utcnow,
)
from shared.topics import WORKFLOW_RUN_CHANGED, step_request_topic

log = logging.getLogger(__name__)
SCHEMA = "workflow"


class WorkflowError(Exception):
    """A request the engine refuses; `code` becomes the reply's error code (an HTTP status)."""

    code = "invalid_input"


class InvalidParams(WorkflowError):
    pass


class RunNotFound(WorkflowError):
    code = "not_found"

    def __init__(self, run_id: uuid.UUID) -> None:
        super().__init__(f"no workflow run {run_id}")


class RunConflict(WorkflowError):
    code = "conflict"


@dataclass(frozen=True)
class StartRequest:
    workflow_type: str
    params: dict[str, Any]
    run_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    intent_id: uuid.UUID | None = None
    created_by: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Started:
    run_id: uuid.UUID
    created: bool


class Engine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        definitions: DefinitionRegistry,
        actions: ActionRegistry,
        *,
        clock: Callable[[], datetime] = utcnow,
        random: Callable[[], float] = random_module.random,
        on_timer: Callable[[datetime], None] = lambda _: None,
    ) -> None:
        self._pool = pool
        self._definitions = definitions
        self._actions = actions
        self._clock = clock
        self._random = random
        self._on_timer = on_timer  # tells the timer loop about an earlier wake-up
        self._machines: dict[tuple[str, int], Machine] = {}

    # --- commands ------------------------------------------------------------------------------

    async def start(self, request: StartRequest) -> Started:
        """Create a run and enter its first state. The same run id, intent id or idempotency key
        returns the run that already exists and starts nothing."""
        definition = self._definitions.latest(request.workflow_type)
        try:
            params = definition.params.model_validate(request.params).model_dump(mode="json")
        except ValidationError as exc:
            raise InvalidParams(_describe(exc, f"params for {definition.name}")) from None
        run_id = request.run_id or uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            created = await repository.insert_run(
                conn,
                run_id=run_id,
                workflow_type=definition.name,
                version=definition.version,
                params=params,
                intent_id=request.intent_id,
                idempotency_key=request.idempotency_key,
                correlation_id=request.correlation_id,
                created_by=request.created_by,
            )
            if not created:
                return Started(await self._existing(conn, request, run_id, params), False)
            stored = await repository.lock_run(conn, run_id)
            assert stored is not None
            transition = self._machine(stored).start(stored.run, self._clock())
            await self._apply(conn, stored, transition)
        return Started(run_id, True)

    async def cancel(self, run_id: uuid.UUID, by: str | None) -> None:
        """Cancel a run that has not finished; cancelling a cancelled run again does nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await self._locked(conn, run_id)
            if stored.run.status == "cancelled":
                return
            try:
                transition = self._machine(stored).cancel(stored.run)
            except NotApplicable as exc:
                raise RunConflict(f"cannot cancel run {run_id}: {exc}") from None
            await repository.abandon_open_step(conn, run_id)
            await repository.close_wait(conn, run_id, "cancelled")
            reason = f"cancelled by {by}" if by else "cancelled"
            await self._apply(
                conn, stored, replace(transition, run=replace(transition.run, error=reason))
            )

    async def retry(self, run_id: uuid.UUID) -> None:
        """Run a failed run again from its failed state. A run that is active (already retried)
        is left alone; a run that finished otherwise cannot be retried."""
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await self._locked(conn, run_id)
            if stored.run.status in ("pending", "running", "waiting"):
                return
            try:
                transition = self._machine(stored).retry_failed(stored.run, self._clock())
            except NotApplicable as exc:
                raise RunConflict(f"cannot retry run {run_id}: {exc}") from None
            await self._apply(conn, stored, transition)

    # --- events --------------------------------------------------------------------------------

    async def step_completed(self, event: WorkflowStepCompleted) -> str:
        """Advance the run the completed step belongs to; returns what became of the event."""
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await repository.lock_run(conn, event.run_id)
            if stored is None:
                log.warning("completion for unknown run %s ignored", event.run_id)
                return "unknown_run"
            closed = await repository.finish_step(
                conn,
                event.run_id,
                event.step_id,
                "succeeded" if event.ok else "failed",
                output=event.output if event.ok else None,
                error=None if event.error is None else f"{event.error.code}: {event.error.message}",
            )
            if not closed:
                log.info("step %s of run %s: a duplicate completion", event.step_id, event.run_id)
                return "duplicate"
            if stored.current_step_id != event.step_id or stored.run.status != "running":
                # recorded in the step history, but the run has moved on
                log.info("step %s of run %s: a late completion", event.step_id, event.run_id)
                return "late"
            machine, now = self._machine(stored), self._clock()
            if event.ok:
                transition = machine.step_succeeded(stored.run, event.output, now)
            else:
                error = event.error or StepError(code="failed", message="no error given")
                transition = machine.step_failed(stored.run, error, now, self._random)
            await self._apply(conn, stored, transition)
            return "advanced"

    async def signal(self, event: WorkflowSignal) -> str:
        """Store a signal; when the run is waiting for it, end the wait."""
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await repository.lock_run(conn, event.run_id)
            if stored is None:
                return "unknown_run"
            if not await repository.store_signal(
                conn, event.run_id, event.name, event.payload, event.event_id
            ):
                return "duplicate"
            if stored.run.status != "waiting":
                return "stored"
            machine = self._machine(stored)
            try:
                wanted = machine.waiting_for(stored.run)
            except NotApplicable:
                return "stored"
            if wanted != event.name:
                return "stored"
            taken = await repository.take_signal(conn, event.run_id, event.name)
            assert taken is not None  # stored above, in this transaction
            signal_id, payload = taken
            await repository.close_wait(conn, event.run_id, "signalled", signal_id)
            transition = machine.signal_received(stored.run, event.name, payload, self._clock())
            await self._apply(conn, stored, transition)
            return "advanced"

    async def wake(self, run_id: uuid.UUID) -> str:
        """Act on a run whose timer has passed: a step timed out, a retry is due, or a wait's
        deadline has come."""
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await repository.lock_run(conn, run_id)
            now = self._clock()
            if stored is None or stored.wake_at is None or stored.wake_at > now:
                return "not_due"  # another instance, or an event, got there first
            machine, run = self._machine(stored), stored.run
            if run.status == "running" and stored.current_step_id is not None:
                await repository.finish_step(
                    conn, run_id, stored.current_step_id, "timed_out", error="no completion in time"
                )
                timeout = StepError(code="timeout", message="the step did not complete in time")
                transition = machine.step_failed(run, timeout, now, self._random)
                outcome = "timed_out"
            elif run.status == "running":
                transition = machine.retry_due(run, now)
                outcome = "retried"
            elif run.status == "waiting":
                await repository.close_wait(conn, run_id, "expired")
                transition = machine.wait_expired(run, now)
                outcome = "wait_expired"
            else:
                await repository.save_run(conn, run, wake_at=None, current_step_id=None)
                return "finished"
            await self._apply(conn, stored, transition)
            return outcome

    # --- internals -----------------------------------------------------------------------------

    async def _apply(self, conn: Connection, stored: StoredRun, transition: Transition) -> None:
        """Store a transition and enqueue its events. A wait whose signal has already arrived
        ends at once, so the loop may apply several transitions."""
        machine = self._machine(stored)
        while isinstance(transition.effect, AwaitSignal):
            wait = transition.effect
            taken = await repository.take_signal(conn, stored.run_id, wait.signal)
            await repository.open_wait(conn, transition.run, wait.signal, wait.deadline_at)
            if taken is None:
                break
            signal_id, payload = taken
            await repository.close_wait(conn, stored.run_id, "signalled", signal_id)
            transition = machine.signal_received(
                transition.run, wait.signal, payload, self._clock()
            )

        run, effect = transition.run, transition.effect
        step_id: int | None = None
        if isinstance(effect, RequestStep):
            step_id = await repository.insert_step(
                conn, run, effect.action, effect.input, effect.deadline_at
            )
        version = await repository.save_run(
            conn, run, wake_at=transition.wake_at, current_step_id=step_id
        )
        correlation = stored.correlation_id or uuid.uuid4().hex
        key = str(stored.run_id)
        if isinstance(effect, RequestStep) and step_id is not None:
            request = WorkflowStepRequested(
                correlation_id=correlation,
                run_id=stored.run_id,
                workflow_type=stored.workflow_type,
                step_id=step_id,
                state=run.state or "",
                visit=run.visit,
                action=effect.action,
                attempt=run.attempt,
                input=effect.input,
                deadline_at=effect.deadline_at,
            )
            owner = self._actions.get(effect.action).owner
            await outbox.enqueue(conn, SCHEMA, step_request_topic(owner).name, key, request)
        changed = WorkflowRunChanged(
            correlation_id=correlation,
            run_id=stored.run_id,
            workflow_type=stored.workflow_type,
            sequence=version,
            status=run.status,
            state=run.state,
            change=transition.change,
            detail=_detail(transition, step_id),
            error=run.error,
        )
        await outbox.enqueue(conn, SCHEMA, WORKFLOW_RUN_CHANGED.name, key, changed)
        if transition.wake_at is not None:
            self._on_timer(transition.wake_at)

    def _machine(self, stored: StoredRun) -> Machine:
        key = (stored.workflow_type, stored.definition_version)
        machine = self._machines.get(key)
        if machine is None:
            definition: Definition = self._definitions.get(*key)
            machine = self._machines[key] = Machine(definition, self._actions)
        return machine

    async def _locked(self, conn: Connection, run_id: uuid.UUID) -> StoredRun:
        stored = await repository.lock_run(conn, run_id)
        if stored is None:
            raise RunNotFound(run_id)
        return stored

    async def _existing(
        self, conn: Connection, request: StartRequest, run_id: uuid.UUID, params: dict[str, Any]
    ) -> uuid.UUID:
        """The run a repeated start refers to. An idempotency key reused for another request is a
        conflict, not a silent return of an unrelated run."""
        if request.idempotency_key is not None:
            found = await repository.find_by_idempotency_key(conn, request.idempotency_key)
            if found is not None:
                if found.workflow_type != request.workflow_type or found.run.params != params:
                    raise RunConflict(
                        "this idempotency key was used for a different request"
                        f" (run {found.run_id}); use a new key"
                    )
                return found.run_id
        return run_id


def _detail(transition: Transition, step_id: int | None) -> dict[str, Any]:
    effect = transition.effect
    if isinstance(effect, RequestStep):
        return {"step_id": step_id, "action": effect.action, "attempt": transition.run.attempt}
    if isinstance(effect, AwaitSignal):
        deadline = effect.deadline_at.isoformat() if effect.deadline_at else None
        return {"signal": effect.signal, "deadline_at": deadline}
    if isinstance(effect, RetryLater):
        return {"retry_at": effect.at.isoformat(), "error": effect.error.model_dump()}
    if isinstance(effect, Finish):
        return {}
    return {}


def _describe(exc: ValidationError, what: str) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )
    return f"invalid {what}: {problems}"
