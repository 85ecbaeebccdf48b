"""The action registry: every action a workflow step can run, by name, with its owner and schemas.

An action is a contract between the workflow engine and the service that performs it, so it lives
in `shared/`: the engine checks definitions against it when they are loaded (an unknown name is an
error then, not at run time) and validates inputs and outputs; the owner implements it (see
`shared.action_worker`). Step requests for an owner go to its own topic,
`workflow.step.requested.<owner>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class NoInput(BaseModel):
    """For actions that need nothing but the run they belong to."""

    model_config = ConfigDict(extra="forbid")


class NoOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")


@dataclass(frozen=True)
class ActionSpec:
    """One action: `<owner>.<verb>`, what it takes and what it returns."""

    name: str
    input: type[BaseModel] = NoInput
    output: type[BaseModel] = NoOutput
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"action name {self.name!r} must look like 'owner.verb' (lower case, digits, _)"
            )

    @property
    def owner(self) -> str:
        """The service that runs it: the part of the name before the dot."""
        return self.name.split(".", 1)[0]


class UnknownAction(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(f"unknown action {name!r}; registered actions: {listed}")
        self.name = name


class ActionRegistry:
    """Actions by name. Registering the same spec twice is harmless (modules may be re-imported);
    two different specs under one name is an error."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def register(self, spec: ActionSpec) -> ActionSpec:
        existing = self._specs.get(spec.name)
        if existing is not None and existing != spec:
            raise ValueError(f"action {spec.name!r} is already registered with other schemas")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> ActionSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownAction(name, sorted(self._specs)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ActionSpec]:
        return iter(self._specs.values())

    def owners(self) -> set[str]:
        return {spec.owner for spec in self._specs.values()}


# The process-wide registry: owners' contract modules register into it when imported.
ACTIONS = ActionRegistry()


def action(
    name: str,
    input: type[BaseModel] = NoInput,
    output: type[BaseModel] = NoOutput,
    description: str = "",
) -> ActionSpec:
    """Declare an action in the process-wide registry."""
    return ACTIONS.register(ActionSpec(name, input, output, description))
