"""Workflow definitions: versioned state machines written as plain Python data.

A definition names its states: a `Task` runs an action and moves on when it succeeds (or, after its
retries, when it fails), a `Wait` ends when a named signal arrives (or at its deadline), an `End`
finishes the run. Definitions are checked when they are registered: every transition goes to a
state that exists, every state can be reached, and every action is in the action registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.actions import ACTIONS, ActionRegistry

EndStatus = Literal["succeeded", "failed", "cancelled", "expired"]
_STATE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


class DefinitionError(ValueError):
    """A definition is not a valid state machine; the message lists every problem."""


@dataclass(frozen=True)
class RunData:
    """What a definition may read to build a step's input or a wait's deadline."""

    run_id: str
    params: dict[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]  # the last output of each task state that succeeded
    signals: Mapping[str, Mapping[str, Any]]  # the payload that ended each wait state


InputBuilder = Callable[[RunData], Mapping[str, Any] | BaseModel]
DeadlineRule = Callable[[RunData], timedelta | None]


@dataclass(frozen=True)
class Retry:
    """Retries of a failed or timed-out attempt: exponential backoff with jitter, up to
    `max_attempts` attempts in all."""

    max_attempts: int = 3
    initial_delay: timedelta = timedelta(seconds=1)
    multiplier: float = 2.0
    max_delay: timedelta = timedelta(minutes=5)
    jitter: float = 0.2  # each delay is moved by up to this fraction, either way

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise DefinitionError(f"invalid retry policy {self}")

    def delay(self, failed_attempt: int, random: Callable[[], float]) -> timedelta:
        """How long to wait after attempt `failed_attempt` (1-based) failed."""
        base = min(
            self.initial_delay.total_seconds() * self.multiplier ** (failed_attempt - 1),
            self.max_delay.total_seconds(),
        )
        spread = base * self.jitter * (2 * random() - 1)
        return timedelta(seconds=max(0.0, base + spread))


NO_RETRY = Retry(max_attempts=1)


@dataclass(frozen=True)
class Task:
    """Run `action`; on success go to `next`, and when every attempt has failed, to
    `on_failure`. Without `input`, the action receives the run's params."""

    action: str
    next: str
    on_failure: str = "failed"
    timeout: timedelta = timedelta(seconds=30)
    retry: Retry = field(default_factory=Retry)
    input: InputBuilder | None = None


@dataclass(frozen=True)
class Wait:
    """Wait for the signal `signal` (it may have arrived already), then go to `next`. With a
    `deadline` (fixed, or computed from the run), go to `on_deadline` when it passes first."""

    signal: str
    next: str
    deadline: timedelta | DeadlineRule | None = None
    on_deadline: str | None = None


@dataclass(frozen=True)
class End:
    """A terminal state: the run finishes with `status`."""

    status: EndStatus = "succeeded"


State = Task | Wait | End


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Definition:
    """One version of a workflow type. A run keeps the version it started with."""

    name: str  # the workflow type, e.g. "email_campaign"
    version: int
    states: Mapping[str, State]
    start: str
    params: type[BaseModel] = NoParams
    description: str = ""

    def state(self, name: str) -> State:
        try:
            return self.states[name]
        except KeyError:
            raise DefinitionError(f"{self.key} has no state {name!r}") from None

    def actions(self) -> set[str]:
        return {s.action for s in self.states.values() if isinstance(s, Task)}

    @property
    def key(self) -> str:
        return f"{self.name} v{self.version}"

    def problems(self, actions: ActionRegistry) -> list[str]:
        """Everything wrong with this definition; empty when it is valid."""
        found: list[str] = []
        if not _TYPE_NAME.match(self.name):
            found.append(f"name {self.name!r} must be lower case letters, digits, '_' and '.'")
        if self.version < 1:
            found.append("version must be 1 or more")
        found += [
            f"state name {n!r} must be snake_case" for n in self.states if not _STATE_NAME.match(n)
        ]
        if self.start not in self.states:
            found.append(f"start state {self.start!r} does not exist")
        for name, state in self.states.items():
            found += [
                f"state {name!r} goes to {target!r}, which does not exist"
                for target in _targets(state)
                if target not in self.states
            ]
            if isinstance(state, Task) and state.action not in actions:
                found.append(f"state {name!r} runs unknown action {state.action!r}")
            if isinstance(state, Task) and state.timeout <= timedelta(0):
                found.append(f"state {name!r} has a timeout that is not positive")
            if isinstance(state, Wait) and (state.deadline is None) != (state.on_deadline is None):
                found.append(
                    f"wait state {name!r} needs both a deadline and on_deadline, or neither"
                )
        if not any(isinstance(s, End) for s in self.states.values()):
            found.append("there is no End state, so no run could finish")
        if self.start in self.states:
            unreachable = set(self.states) - _reachable(self.states, self.start)
            found += [f"state {name!r} cannot be reached" for name in sorted(unreachable)]
        return found


def _targets(state: State) -> list[str]:
    if isinstance(state, Task):
        return [state.next, state.on_failure]
    if isinstance(state, Wait):
        return [state.next] + ([state.on_deadline] if state.on_deadline else [])
    return []


def _reachable(states: Mapping[str, State], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo += _targets(states[name])
    return seen


class DefinitionRegistry:
    """Every deployed definition, by type and version; new runs use the latest version."""

    def __init__(self, actions: ActionRegistry = ACTIONS) -> None:
        self._actions = actions
        self._by_key: dict[tuple[str, int], Definition] = {}

    def register(self, definition: Definition) -> Definition:
        problems = definition.problems(self._actions)
        if problems:
            raise DefinitionError(f"{definition.key} is invalid: " + "; ".join(problems))
        existing = self._by_key.get((definition.name, definition.version))
        if existing is not None and existing is not definition:
            raise DefinitionError(f"{definition.key} is registered twice")
        self._by_key[(definition.name, definition.version)] = definition
        return definition

    def get(self, workflow_type: str, version: int) -> Definition:
        try:
            return self._by_key[(workflow_type, version)]
        except KeyError:
            raise UnknownWorkflowType(workflow_type, self.types(), version) from None

    def latest(self, workflow_type: str) -> Definition:
        versions = [v for (t, v) in self._by_key if t == workflow_type]
        if not versions:
            raise UnknownWorkflowType(workflow_type, self.types())
        return self._by_key[(workflow_type, max(versions))]

    def types(self) -> list[str]:
        return sorted({t for (t, _) in self._by_key})

    def __iter__(self) -> Iterator[Definition]:
        return iter(self._by_key.values())


class UnknownWorkflowType(LookupError):
    def __init__(self, workflow_type: str, known: list[str], version: int | None = None) -> None:
        what = f"{workflow_type!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"unknown workflow type {what}; known types: {', '.join(known) or 'none'}")
        self.workflow_type = workflow_type
