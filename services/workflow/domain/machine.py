"""How a run moves through its definition: pure functions from a run and what happened to the
run's next state and the one effect to carry out (request a step, wait, retry later, or finish).

No I/O here: the engine loads the run, calls one of these functions, and stores the result with
its events in one transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from services.workflow.domain.definitions import Definition, End, RunData, Task, Wait
from shared.actions import ActionRegistry
from shared.contracts.workflow import (
    FINISHED_STATUSES,
    INPUT_SIGNAL,
    Question,
    RunStatus,
    StepError,
)

MAX_CHAIN = 50  # states entered in one transition without waiting: more is a definition loop
INPUT_DEADLINE = timedelta(hours=72)  # a question nobody answers in time expires the run


@dataclass(frozen=True)
class RunContext:
    """Data a run carries between states (stored as JSON)."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
    # The question the run waits on (a Question's fields plus `state`, `asked_at`, `deadline_at`)
    # and the answers given so far, by param path: the params a step sees include them.
    question: dict[str, Any] | None = None
    answers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunContext:
        return cls(
            outputs=dict(data.get("outputs", {})),
            signals=dict(data.get("signals", {})),
            visits=dict(data.get("visits", {})),
            question=data.get("question"),
            answers=dict(data.get("answers", {})),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "outputs": self.outputs, "signals": self.signals, "visits": self.visits
        }  # fmt: skip
        if self.question is not None:
            data["question"] = self.question
        if self.answers:
            data["answers"] = self.answers
        return data


@dataclass(frozen=True)
class Run:
    """What the machine knows about a run."""

    run_id: str
    status: RunStatus
    state: str | None
    params: dict[str, Any]
    context: RunContext = field(default_factory=RunContext)
    visit: int = 0
    attempt: int = 0
    failed_state: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def data(self) -> RunData:
        params = with_answers(self.params, self.context.answers)
        return RunData(self.run_id, params, self.context.outputs, self.context.signals)


# --- Effects: what the engine must do after storing the new run --------------------------------


@dataclass(frozen=True)
class RequestStep:
    action: str
    input: dict[str, Any]
    deadline_at: datetime


@dataclass(frozen=True)
class AwaitSignal:
    signal: str
    deadline_at: datetime | None


@dataclass(frozen=True)
class RetryLater:
    at: datetime
    error: StepError


@dataclass(frozen=True)
class Finish:
    status: RunStatus


Effect = RequestStep | AwaitSignal | RetryLater | Finish


@dataclass(frozen=True)
class Transition:
    run: Run
    effect: Effect
    change: str  # what happened, for the progress stream: "step_requested", "waiting", ...

    @property
    def wake_at(self) -> datetime | None:
        """When the engine must look at the run again if nothing else happens first."""
        if isinstance(self.effect, RequestStep):
            return self.effect.deadline_at
        if isinstance(self.effect, AwaitSignal):
            return self.effect.deadline_at
        if isinstance(self.effect, RetryLater):
            return self.effect.at
        return None


class NotApplicable(Exception):
    """The event does not apply to the run as it is now (it finished, or moved on): a late or
    duplicate event, which changes nothing."""


class Machine:
    """The transition rules for runs of one definition."""

    def __init__(self, definition: Definition, actions: ActionRegistry) -> None:
        self.definition = definition
        self._actions = actions

    def start(self, run: Run, now: datetime) -> Transition:
        return self._enter(run, self.definition.start, now, depth=0)

    def step_succeeded(self, run: Run, output: Mapping[str, Any], now: datetime) -> Transition:
        task = self._current_task(run)
        spec = self._actions.get(task.action)
        try:
            checked = spec.output.model_validate(dict(output)).model_dump(mode="json")
        except ValidationError as exc:
            error = StepError(code="invalid_output", message=_short(exc), retryable=False)
            return self.step_failed(run, error, now, random=lambda: 0.5)
        outputs = {**run.context.outputs, _state(run): checked}
        moved = replace(run, context=replace(run.context, outputs=outputs))
        return self._enter(moved, task.next, now, depth=0)

    def step_failed(
        self, run: Run, error: StepError, now: datetime, random: Callable[[], float]
    ) -> Transition:
        task = self._current_task(run)
        if error.question is not None:
            return self._ask(run, error.question, now)
        if error.retryable and run.attempt < task.retry.max_attempts:
            at = now + task.retry.delay(run.attempt, random)
            reason = _failure(run, task, error)
            return Transition(replace(run, error=reason), RetryLater(at, error), "step_failed")
        reason = _failure(run, task, error)
        failed = replace(run, failed_state=run.state, error=reason)
        return self._enter(failed, task.on_failure, now, depth=0)

    def retry_due(self, run: Run, now: datetime) -> Transition:
        task = self._current_task(run)
        retried = replace(run, attempt=run.attempt + 1)
        return self._request(retried, task, now, depth=0)

    def signal_received(
        self, run: Run, name: str, payload: Mapping[str, Any], now: datetime
    ) -> Transition:
        if run.context.question is not None and run.status == "waiting":
            if name != INPUT_SIGNAL:
                raise NotApplicable(f"the run waits for an answer, not {name!r}")
            return self._answered(run, str(payload.get("answer", "")), now)
        wait = self._current_wait(run)
        if wait.signal != name:
            raise NotApplicable(f"the run waits for {wait.signal!r}, not {name!r}")
        signals = {**run.context.signals, _state(run): dict(payload)}
        moved = replace(run, context=replace(run.context, signals=signals))
        return self._enter(moved, wait.next, now, depth=0)

    def waiting_for(self, run: Run) -> str:
        """The signal the run waits for now."""
        if run.context.question is not None and run.status == "waiting":
            return INPUT_SIGNAL
        return self._current_wait(run).signal

    def check_answer(self, run: Run, answer: str) -> None:
        """Raise ValueError when `answer` cannot answer the run's question (the API's 422); a
        run that waits on no question is NotApplicable."""
        question = run.context.question
        if question is None or run.status != "waiting":
            raise NotApplicable(f"the run is {run.status} and waits on no question")
        self._params_with(run, question, answer)

    def wait_expired(self, run: Run, now: datetime) -> Transition:
        question = run.context.question
        if question is not None and run.status == "waiting":
            ended = replace(
                run, status="expired", error=f"no answer in time to: {question['text']}"[:1_000]
            )
            return Transition(ended, Finish("expired"), "expired")
        wait = self._current_wait(run)
        if wait.on_deadline is None:
            raise NotApplicable("the wait has no deadline")
        return self._enter(run, wait.on_deadline, now, depth=0)

    def retry_failed(self, run: Run, now: datetime) -> Transition:
        """Start a failed run again from the state that failed, with fresh attempts."""
        if run.status != "failed" or run.failed_state is None:
            raise NotApplicable(f"only a failed run can be retried; this one is {run.status}")
        resumed = replace(run, status="running", error=None, failed_state=None)
        return self._enter(resumed, run.failed_state, now, depth=0)

    def cancel(self, run: Run) -> Transition:
        if run.finished:
            raise NotApplicable(f"the run has already finished ({run.status})")
        return Transition(replace(run, status="cancelled"), Finish("cancelled"), "cancelled")

    # --- questions -----------------------------------------------------------------------------

    def _ask(self, run: Run, question: Question, now: datetime) -> Transition:
        """The step needs a person's answer: wait for it in the step's state."""
        deadline = now + INPUT_DEADLINE
        asked = {
            **question.model_dump(mode="json"),
            "state": _state(run),
            "asked_at": now.isoformat(),
            "deadline_at": deadline.isoformat(),
        }
        waiting = replace(
            run, status="waiting", error=None, context=replace(run.context, question=asked)
        )
        return Transition(waiting, AwaitSignal(INPUT_SIGNAL, deadline), "needs_input")

    def _answered(self, run: Run, answer: str, now: datetime) -> Transition:
        question = run.context.question
        assert question is not None
        try:
            answers = self._params_with(run, question, answer)
        except ValueError as exc:
            # Ask again, saying why; the deadline stays the first one.
            again = {**question, "text": f"{exc} {question['text']}"[:2_000]}
            waiting = replace(run, context=replace(run.context, question=again))
            deadline = datetime.fromisoformat(question["deadline_at"])
            return Transition(waiting, AwaitSignal(INPUT_SIGNAL, deadline), "needs_input")
        context = replace(run.context, question=None, answers=answers)
        resumed = replace(run, status="running", error=None, context=context)
        return self._enter(resumed, question["state"], now, depth=0)

    def _params_with(self, run: Run, question: Mapping[str, Any], answer: str) -> dict[str, Any]:
        """The run's answers with this one added, checked against the definition's params."""
        value = chosen(question, answer)
        if not value:
            raise ValueError("An empty answer does not answer the question.")
        answers = {**run.context.answers, question["field"]: value}
        try:
            self.definition.params.model_validate(with_answers(run.params, answers))
        except ValidationError as exc:
            raise ValueError(f"{answer!r} is not a valid answer ({_short(exc)}).") from None
        return answers

    # --- entering states -----------------------------------------------------------------------

    def _enter(self, run: Run, name: str, now: datetime, depth: int) -> Transition:
        if depth >= MAX_CHAIN:
            stuck = replace(
                run, status="failed", error=f"more than {MAX_CHAIN} states entered at once"
            )
            return Transition(stuck, Finish("failed"), "failed")
        visits = {**run.context.visits, name: run.context.visits.get(name, 0) + 1}
        entered = replace(
            run, state=name, visit=visits[name], attempt=0,
            context=replace(run.context, visits=visits),
        )  # fmt: skip
        state = self.definition.state(name)
        if isinstance(state, End):
            error = entered.error if state.status != "succeeded" else None
            done = replace(entered, status=state.status, error=error)
            return Transition(done, Finish(state.status), state.status)
        if isinstance(state, Wait):
            deadline = _deadline(state, entered, now)
            waiting = replace(entered, status="waiting")
            return Transition(waiting, AwaitSignal(state.signal, deadline), "waiting")
        return self._request(replace(entered, attempt=1), state, now, depth)

    def _request(self, run: Run, task: Task, now: datetime, depth: int) -> Transition:
        try:
            payload = self._input(task, run)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            error = StepError(code="invalid_input", message=_short(exc), retryable=False)
            failed = replace(run, failed_state=run.state, error=_failure(run, task, error))
            return self._enter(failed, task.on_failure, now, depth + 1)
        running = replace(run, status="running")
        step = RequestStep(task.action, payload, now + task.timeout)
        return Transition(running, step, "step_requested")

    def _input(self, task: Task, run: Run) -> dict[str, Any]:
        raw = task.input(run.data()) if task.input is not None else run.data().params
        if isinstance(raw, BaseModel):
            raw = raw.model_dump(mode="json")
        spec = self._actions.get(task.action)
        return spec.input.model_validate(dict(raw)).model_dump(mode="json")

    def _current_task(self, run: Run) -> Task:
        state = self.definition.state(_state(run))
        if run.status != "running" or not isinstance(state, Task):
            raise NotApplicable(f"the run is {run.status} in {run.state!r}, not running a step")
        return state

    def _current_wait(self, run: Run) -> Wait:
        state = self.definition.state(_state(run))
        if run.status != "waiting" or not isinstance(state, Wait):
            raise NotApplicable(f"the run is {run.status} in {run.state!r}, not waiting")
        return state


def chosen(question: Mapping[str, Any], answer: str) -> str:
    """What an answer sets the question's field to: a choice picked by its number, label or
    value (`Question.pick`), or the text as it is."""
    asked = Question(text=question["text"], field=question["field"], choices=question["choices"])
    return asked.pick(answer) or " ".join(answer.split())


def with_answers(params: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """The params with each answer set at its dotted path."""
    merged = copy.deepcopy(dict(params))
    for path, value in answers.items():
        *parents, leaf = path.split(".")
        node = merged
        for name in parents:
            child = node.get(name)
            node[name] = child = dict(child) if isinstance(child, Mapping) else {}
            node = child
        node[leaf] = value
    return merged


def _state(run: Run) -> str:
    if run.state is None:
        raise NotApplicable("the run has not started")
    return run.state


def _deadline(wait: Wait, run: Run, now: datetime) -> datetime | None:
    rule = wait.deadline
    after = rule if isinstance(rule, timedelta) or rule is None else rule(run.data())
    return None if after is None else now + after


def _failure(run: Run, task: Task, error: StepError) -> str:
    attempts = "1 attempt" if run.attempt <= 1 else f"{run.attempt} attempts"
    return (
        f"state {run.state!r}: {task.action} failed after {attempts}: {error.code}: {error.message}"
    )


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )[:1_000]
    return f"{type(exc).__name__}: {exc}"[:1_000]
