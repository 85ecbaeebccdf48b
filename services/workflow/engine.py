"""The workflow engine: applies what happens to a run (a start, a step completion, a signal, a
timer, a cancel or retry) in one transaction of its `RunStore` (PostgreSQL in production) with the
run's row locked, and writes the events it causes to the outbox in the same transaction.

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
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from pydantic import ValidationError

from services.workflow import repository
from services.workflow.domain.definitions import Definition, DefinitionRegistry, Task
from services.workflow.domain.machine import (
    AwaitSignal,
    Finish,
    Machine,
    NotApplicable,
    RequestStep,
    RetryLater,
    Transition,
)
from services.workflow.repository import PostgresRuns, RunStore, RunTransaction, StoredRun
from shared import audit
from shared.actions import ActionRegistry
from shared.contracts.audit import AuditAction
from shared.contracts.common import DEFAULT_TEAM, Event, utcnow
from shared.contracts.workflow import (
    INPUT_SIGNAL,
    RunQuestion,
    StepError,
    WorkflowRunChanged,
    WorkflowSignal,
    WorkflowStepCompleted,
    WorkflowStepRequested,
)
from shared.errors import Refused
from shared.metrics import (
    WORKFLOW_RUNS_FINISHED,
    WORKFLOW_RUNS_STARTED,
    WORKFLOW_STEP_DURATION,
    WORKFLOW_STEP_RETRIES,
    Children,
)
from shared.telemetry import ORIGINS, cause_of, causes
from shared.topics import WORKFLOW_QUESTIONS, WORKFLOW_RUN_CHANGED, step_request_topic

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


class WorkflowError(Refused):
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
    team: str = DEFAULT_TEAM


@dataclass(frozen=True)
class Started:
    run_id: uuid.UUID
    created: bool


class Engine:
    """Applies commands and events to runs. `runs` is where runs are kept: the pool of the
    `workflow` schema, or any `RunStore` (a fake in unit tests)."""

    def __init__(
        self,
        runs: asyncpg.Pool | RunStore,
        definitions: DefinitionRegistry,
        actions: ActionRegistry,
        *,
        clock: Callable[[], datetime] = utcnow,
        random: Callable[[], float] = random_module.random,
        on_timer: Callable[[datetime], None] = lambda _: None,
    ) -> None:
        self._runs: RunStore = PostgresRuns(runs) if isinstance(runs, asyncpg.Pool) else runs
        self._definitions = definitions
        self._actions = actions
        self._clock = clock
        self._random = random
        self._on_timer = on_timer  # tells the timer loop about an earlier wake-up
        self._machines: dict[tuple[str, int], Machine] = {}
        # Metrics, counted in the transaction that makes the change (a transaction that rolls
        # back and is redone, as after a redelivered event, may count a change twice).
        self._runs_started = Children(WORKFLOW_RUNS_STARTED)
        self._runs_finished = Children(WORKFLOW_RUNS_FINISHED)
        self._step_durations = Children(WORKFLOW_STEP_DURATION)
        self._step_retries = Children(WORKFLOW_STEP_RETRIES)

    # --- commands ------------------------------------------------------------------------------

    async def start(self, request: StartRequest) -> Started:
        """Create a run and enter its first state. The same run id, intent id or idempotency key
        returns the run that already exists and starts nothing."""
        definition = self._definitions.latest(request.workflow_type)
        new = _new_run(request, definition, request.run_id or uuid.uuid4())
        async with self._runs.transaction() as tx:
            if not await tx.insert_runs([new]):
                return Started(await self._existing(tx, request, new.run_id, new.params), False)
            await self._enter_first_states(tx, [new.run_id])
        return Started(new.run_id, True)

    async def start_many(self, requests: list[StartRequest]) -> list[Started]:
        """Start several runs in one transaction, a few statements for all of them (a batch of
        detected intents). Each request names its run id; one whose run exists already starts
        nothing. Idempotency keys are for `start`, which checks a reused key's request."""
        new: dict[uuid.UUID, repository.NewRun] = {}
        for request in requests:
            if request.run_id is None or request.idempotency_key is not None:
                raise ValueError("start_many takes requests with a run id and no idempotency key")
            definition = self._definitions.latest(request.workflow_type)
            new.setdefault(request.run_id, _new_run(request, definition, request.run_id))
        async with self._runs.transaction() as tx:
            created = await tx.insert_runs(list(new.values()))
            await self._enter_first_states(tx, sorted(created))
        return [Started(run_id, run_id in created) for run_id in new]

    async def _enter_first_states(self, tx: RunTransaction, run_ids: list[uuid.UUID]) -> None:
        runs = await tx.lock_runs(run_ids)
        now = self._clock()
        for stored in runs.values():
            self._runs_started.get(stored.workflow_type).inc()
        await self._apply_many(
            tx,
            [(stored, self._machine(stored).start(stored.run, now)) for stored in runs.values()],
        )

    async def cancel(self, run_id: uuid.UUID, by: str | None) -> None:
        """Cancel a run that has not finished; cancelling a cancelled run again does nothing."""
        async with self._runs.transaction() as tx:
            stored = await self._locked(tx, run_id)
            if stored.run.status == "cancelled":
                return
            try:
                transition = self._machine(stored).cancel(stored.run)
            except NotApplicable as exc:
                raise RunConflict(f"cannot cancel run {run_id}: {exc}") from None
            await tx.abandon_open_step(run_id)
            await tx.close_wait(run_id, "cancelled")
            reason = f"cancelled by {by}" if by else "cancelled"
            await self._apply(
                tx, stored, replace(transition, run=replace(transition.run, error=reason))
            )
            detail = {"status_before": stored.run.status, "state": stored.run.state}
            await tx.enqueue([_audit("run.cancelled", stored, by, detail)])

    async def retry(self, run_id: uuid.UUID, by: str | None = None) -> None:
        """Run a failed run again from its failed state. A run that is active (already retried)
        is left alone; a run that finished otherwise cannot be retried. `by`: who asked."""
        async with self._runs.transaction() as tx:
            stored = await self._locked(tx, run_id)
            if stored.run.status in ("pending", "running", "waiting"):
                return
            try:
                transition = self._machine(stored).retry_failed(stored.run, self._clock())
            except NotApplicable as exc:
                raise RunConflict(f"cannot retry run {run_id}: {exc}") from None
            await self._apply(tx, stored, transition)
            detail = {"status_before": stored.run.status, "state": stored.run.state}
            await tx.enqueue([_audit("run.retried", stored, by, detail)])

    async def provide_input(self, run_id: uuid.UUID, answer: str, by: str | None) -> str:
        """Answer the question the run waits on: the step that asked runs again. An answer the
        run cannot take is InvalidParams; a run that waits on no question, RunConflict."""
        async with self._runs.transaction() as tx:
            stored = await self._locked(tx, run_id)
            try:
                self._machine(stored).check_answer(stored.run, answer)
            except NotApplicable as exc:
                raise RunConflict(f"run {run_id} waits on no question: {exc}") from None
            except ValueError as exc:
                raise InvalidParams(str(exc)) from None
        signal = WorkflowSignal(
            run_id=run_id,
            name=INPUT_SIGNAL,
            payload={"answer": answer, "by": by},
            sent_by=by or "workflow api",
            **({"correlation_id": stored.correlation_id} if stored.correlation_id else {}),
        )
        return await self.signal(signal)

    # --- events --------------------------------------------------------------------------------

    async def step_completed(self, event: WorkflowStepCompleted) -> str:
        """Advance the run the completed step belongs to; returns what became of the event."""
        return (await self.steps_completed([event]))[0]

    async def steps_completed(self, events: list[WorkflowStepCompleted]) -> list[str]:
        """Apply a batch of completions, a few statements per round for the whole batch: the
        first completion of each run in one round, a second one for the same run in the next."""
        outcomes: list[str] = [""] * len(events)
        pending = list(enumerate(events))
        while pending:
            this_round: dict[uuid.UUID, tuple[int, WorkflowStepCompleted]] = {}
            later: list[tuple[int, WorkflowStepCompleted]] = []
            for index, event in pending:
                if event.run_id in this_round:
                    later.append((index, event))
                else:
                    this_round[event.run_id] = (index, event)
            async with self._runs.transaction() as tx:
                results = await self._complete_round(tx, list(this_round.values()))
            for index, outcome in results:
                outcomes[index] = outcome
            pending = later
        return outcomes

    async def _complete_round(
        self, tx: RunTransaction, items: list[tuple[int, WorkflowStepCompleted]]
    ) -> list[tuple[int, str]]:
        runs = await tx.lock_runs([event.run_id for _, event in items])
        closed = await tx.finish_steps(
            [
                repository.StepOutcome(
                    run_id=event.run_id,
                    step_id=event.step_id,
                    status="succeeded" if event.ok else "failed",
                    output=event.output if event.ok else None,
                    error=None
                    if event.error is None
                    else f"{event.error.code}: {event.error.message}",
                )
                for _, event in items
                if event.run_id in runs
            ]
        )
        now = self._clock()
        results: list[tuple[int, str]] = []
        transitions: list[tuple[StoredRun, Transition]] = []
        for index, event in items:
            stored = runs.get(event.run_id)
            if stored is None:
                log.warning("completion for unknown run %s ignored", event.run_id)
                results.append((index, "unknown_run"))
            elif event.step_id not in closed:
                log.info("step %s of run %s: a duplicate completion", event.step_id, event.run_id)
                results.append((index, "duplicate"))
            elif stored.current_step_id != event.step_id or stored.run.status != "running":
                # recorded in the step history, but the run has moved on
                log.info("step %s of run %s: a late completion", event.step_id, event.run_id)
                results.append((index, "late"))
            else:
                machine = self._machine(stored)
                self._observe_step(stored, event.action, "succeeded" if event.ok else "failed", now)
                if event.ok:
                    transition = machine.step_succeeded(stored.run, event.output, now)
                else:
                    error = event.error or StepError(code="failed", message="no error given")
                    transition = machine.step_failed(stored.run, error, now, self._random)
                transitions.append((stored, transition))
                results.append((index, "advanced"))
        await self._apply_many(tx, transitions)
        return results

    async def signal(self, event: WorkflowSignal) -> str:
        """Store a signal; when the run is waiting for it, end the wait. An answer to the run's
        question (through the API or a conversation) is recorded in the audit log."""
        async with self._runs.transaction() as tx:
            stored = await tx.lock_run(event.run_id)
            if stored is None:
                return "unknown_run"
            if event.name == INPUT_SIGNAL and stored.run.context.question is None:
                return "stale"  # an answer to no question is not kept for a later one
            if not await tx.store_signal(event.run_id, event.name, event.payload, event.event_id):
                return "duplicate"
            if event.name == INPUT_SIGNAL:
                by, answer = event.payload.get("by"), event.payload.get("answer")
                actor = by[:200] if isinstance(by, str) else None  # not to refuse a signal
                entry = _audit("run.input_given", stored, actor, {"answer": answer})
                await tx.enqueue([entry])
            if stored.run.status != "waiting":
                return "stored"
            machine = self._machine(stored)
            try:
                wanted = machine.waiting_for(stored.run)
            except NotApplicable:
                return "stored"
            if wanted != event.name:
                return "stored"
            taken = await tx.take_signal(event.run_id, event.name)
            assert taken is not None  # stored above, in this transaction
            signal_id, payload = taken
            await tx.close_wait(event.run_id, "signalled", signal_id)
            transition = machine.signal_received(stored.run, event.name, payload, self._clock())
            await self._apply(tx, stored, transition)
            return "advanced"

    async def wake(self, run_id: uuid.UUID) -> str:
        """Act on a run whose timer has passed: a step timed out, a retry is due, or a wait's
        deadline has come."""
        async with self._runs.transaction() as tx:
            stored = await tx.lock_run(run_id)
            now = self._clock()
            if stored is None or stored.wake_at is None or stored.wake_at > now:
                return "not_due"  # another instance, or an event, got there first
            machine, run = self._machine(stored), stored.run
            if run.status == "running" and stored.current_step_id is not None:
                timed_out = repository.StepOutcome(
                    run_id, stored.current_step_id, "timed_out", error="no completion in time"
                )
                await tx.finish_steps([timed_out])
                self._observe_step(stored, self._action_of(stored), "timed_out", now)
                timeout = StepError(code="timeout", message="the step did not complete in time")
                transition = machine.step_failed(run, timeout, now, self._random)
                outcome = "timed_out"
            elif run.status == "running":
                transition = machine.retry_due(run, now)
                outcome = "retried"
            elif run.status == "waiting":
                await tx.close_wait(run_id, "expired")
                transition = machine.wait_expired(run, now)
                outcome = "wait_expired"
            else:
                await tx.save_runs([repository.RunUpdate(run, None, None)])
                return "finished"
            await self._apply(tx, stored, transition)
            return outcome

    # --- internals -----------------------------------------------------------------------------

    async def _apply(self, tx: RunTransaction, stored: StoredRun, transition: Transition) -> None:
        await self._apply_many(tx, [(stored, transition)])

    async def _apply_many(
        self, tx: RunTransaction, items: list[tuple[StoredRun, Transition]]
    ) -> None:
        """Store transitions of distinct runs and enqueue their events, a few statements for
        all of them."""
        settled = [(stored, await self._through_waits(tx, stored, t)) for stored, t in items]
        step_ids = await tx.insert_steps(
            [
                repository.NewStep(t.run, t.effect.action, t.effect.input, t.effect.deadline_at)
                for _, t in settled
                if isinstance(t.effect, RequestStep)
            ]
        )
        versions = await tx.save_runs(
            [
                repository.RunUpdate(t.run, t.wake_at, step_ids.get(stored.run_id))
                for stored, t in settled
            ]
        )
        events: list[tuple[str, str, Event]] = []
        traced: dict[object, Context] = {}
        for stored, transition in settled:
            self._count(stored, transition)
            step_id = step_ids.get(stored.run_id)
            run_events = self._events(stored, transition, step_id, versions[stored.run_id])
            context = _trace_transition(stored, transition)
            traced.update((event.event_id, context) for _, _, event in run_events)
            events += run_events
            if transition.wake_at is not None:
                self._on_timer(transition.wake_at)
        with causes(by_event=traced):
            await tx.enqueue(events)

    async def _through_waits(
        self, tx: RunTransaction, stored: StoredRun, transition: Transition
    ) -> Transition:
        """Open the wait a transition enters; when its signal has arrived already, end the wait
        at once and go on (possibly into further waits)."""
        machine = self._machine(stored)
        while isinstance(transition.effect, AwaitSignal):
            wait = transition.effect
            taken = await tx.take_signal(stored.run_id, wait.signal)
            await tx.open_wait(transition.run, wait.signal, wait.deadline_at)
            if taken is None:
                break
            signal_id, payload = taken
            await tx.close_wait(stored.run_id, "signalled", signal_id)
            transition = machine.signal_received(
                transition.run, wait.signal, payload, self._clock()
            )
        return transition

    def _events(
        self, stored: StoredRun, transition: Transition, step_id: int | None, version: int
    ) -> list[tuple[str, str, Event]]:
        """The step request a transition sends (if any) and the run's change, for the outbox."""
        run, effect = transition.run, transition.effect
        correlation = stored.correlation_id or uuid.uuid4().hex
        key = str(stored.run_id)
        events: list[tuple[str, str, Event]] = []
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
            events.append((step_request_topic(owner).name, key, request))
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
            intent_id=stored.intent_id,
        )
        events.append((WORKFLOW_RUN_CHANGED.name, key, changed))
        asked, before = run.context.question, stored.run.context.question
        if asked != before and (asked is not None or before is not None):
            question = RunQuestion(
                correlation_id=correlation,
                run_id=stored.run_id,
                intent_id=stored.intent_id,
                question=asked,
            )
            events.append((WORKFLOW_QUESTIONS.name, key, question))
        return events

    def _count(self, stored: StoredRun, transition: Transition) -> None:
        """The metrics of one transition: a run that finished, a step to be tried again."""
        run = transition.run
        if run.finished and not stored.run.finished:
            self._runs_finished.get(stored.workflow_type, run.status).inc()
        if isinstance(transition.effect, RetryLater):
            self._step_retries.get(stored.workflow_type, stored.run.state or "").inc()

    def _observe_step(self, stored: StoredRun, action: str, outcome: str, now: datetime) -> None:
        """A step's duration: from the change that requested it (the run's `updated_at`, which
        nothing else moves while the step runs) to `now`. Runs kept elsewhere than PostgreSQL
        (fakes) have no such row."""
        record = stored.record
        requested = record["updated_at"] if record is not None else None
        if isinstance(requested, datetime):
            seconds = max(0.0, (now - requested).total_seconds())
            self._step_durations.get(stored.workflow_type, action, outcome).observe(seconds)

    def _action_of(self, stored: StoredRun) -> str:
        """The action of the state a run is in (its state's name if that runs none)."""
        definition = self._definitions.get(stored.workflow_type, stored.definition_version)
        state = definition.states.get(stored.run.state or "")
        return state.action if isinstance(state, Task) else stored.run.state or ""

    def _machine(self, stored: StoredRun) -> Machine:
        key = (stored.workflow_type, stored.definition_version)
        machine = self._machines.get(key)
        if machine is None:
            definition: Definition = self._definitions.get(*key)
            machine = self._machines[key] = Machine(definition, self._actions)
        return machine

    async def _locked(self, tx: RunTransaction, run_id: uuid.UUID) -> StoredRun:
        stored = await tx.lock_run(run_id)
        if stored is None:
            raise RunNotFound(run_id)
        return stored

    async def _existing(
        self, tx: RunTransaction, request: StartRequest, run_id: uuid.UUID, params: dict[str, Any]
    ) -> uuid.UUID:
        """The run a repeated start refers to. An idempotency key reused for another request is a
        conflict, not a silent return of an unrelated run."""
        if request.idempotency_key is not None:
            found = await tx.find_by_idempotency_key(request.idempotency_key, request.team)
            if found is not None:
                if found.workflow_type != request.workflow_type or found.run.params != params:
                    raise RunConflict(
                        "this idempotency key was used for a different request"
                        f" (run {found.run_id}); use a new key"
                    )
                return found.run_id
        return run_id


def _trace_transition(stored: StoredRun, transition: Transition) -> Context:
    """A span for one transition of a run, in the run's trace, whose context the events it
    writes carry: so a run's step requests (extract, draft, send) and changes stay in the trace
    of the request that started it. The run's trace is the first this process saw it in
    (`ORIGINS`). When something else caused the transition (a reviewer's decision, the sender's
    `sending_finished`, a timer), the span is a child of the run's trace with a link to the
    cause. A run this process never saw start (a restart) continues its cause's trace."""
    cause = cause_of(correlation_id=stored.correlation_id) or otel_context.get_current()
    caused_by = trace.get_current_span(cause).get_span_context()
    origin = ORIGINS.remember(stored.run_id, caused_by)
    parent, links = cause, []
    if origin.is_valid and origin.trace_id != caused_by.trace_id:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(origin))
        links = [trace.Link(caused_by)] if caused_by.is_valid else []
    run, effect = transition.run, transition.effect
    attributes: dict[str, str] = {
        "workflow.type": stored.workflow_type,
        "workflow.run_id": str(stored.run_id),
        "workflow.change": transition.change,
        "workflow.status": run.status,
        "workflow.state": run.state or "",
    }
    if isinstance(effect, RequestStep):
        attributes["workflow.action"] = effect.action
    elif isinstance(effect, AwaitSignal):
        attributes["workflow.signal"] = effect.signal
    span = _tracer.start_span(
        f"workflow {transition.change}", context=parent, links=links, attributes=attributes
    )
    span.end()  # marks the moment; what it causes hangs under it
    return trace.set_span_in_context(span, parent)


def _audit(
    action: AuditAction, stored: StoredRun, by: str | None, detail: dict[str, Any]
) -> tuple[str, str, Event]:
    """An audit entry about a run, for the outbox of the transaction that changes it."""
    recorded = audit.entry(
        action, "run", stored.run_id, actor=by, run_id=stored.run_id, team=stored.team,
        detail=detail, correlation_id=stored.correlation_id,
    )  # fmt: skip
    return audit.outbox_event(recorded)


def _new_run(request: StartRequest, definition: Definition, run_id: uuid.UUID) -> repository.NewRun:
    given = dict(request.params)
    if "requested_by" in definition.params.model_fields and request.created_by is not None:
        given.setdefault("requested_by", request.created_by)  # who asked, unless the params say
    if "team" in definition.params.model_fields:
        given["team"] = request.team  # the starter's team, whatever the params say
    try:
        params = definition.params.model_validate(given).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidParams(_describe(exc, f"params for {definition.name}")) from None
    return repository.NewRun(
        run_id=run_id,
        workflow_type=definition.name,
        version=definition.version,
        params=params,
        intent_id=request.intent_id,
        idempotency_key=request.idempotency_key,
        correlation_id=request.correlation_id,
        created_by=request.created_by,
        team=request.team,
    )


def _detail(transition: Transition, step_id: int | None) -> dict[str, Any]:
    effect = transition.effect
    if isinstance(effect, RequestStep):
        return {"step_id": step_id, "action": effect.action, "attempt": transition.run.attempt}
    if isinstance(effect, AwaitSignal):
        deadline = effect.deadline_at.isoformat() if effect.deadline_at else None
        question = transition.run.context.question
        if transition.change == "needs_input" and question is not None:
            return {"signal": effect.signal, "deadline_at": deadline, "question": question}
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
