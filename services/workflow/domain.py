"""Which detected intents start which workflow: plain rules, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import IntentDetected
from shared.intents import INTENTS


@dataclass(frozen=True)
class WorkflowType:
    name: str
    version: int


WORKFLOW_TYPES: dict[str, WorkflowType] = {
    "email_campaign": WorkflowType("email_campaign", version=1),
}


@dataclass(frozen=True)
class StartDecision:
    start: bool
    reason: str
    workflow: WorkflowType | None = None


def decide_start(event: IntentDetected) -> StartDecision:
    """Whether a detected intent starts a workflow, and if not, why."""
    if event.mode != "workflow":
        return StartDecision(False, "simple-mode intent")
    if event.needs_clarification:
        return StartDecision(False, "the intent still needs clarification")
    workflow = WORKFLOW_TYPES.get(event.intent)
    spec = INTENTS.get(event.intent)
    if workflow is None or spec is None:
        return StartDecision(False, f"no workflow is registered for intent {event.intent!r}")
    missing = spec.missing_slots(event.slots)
    if missing:
        return StartDecision(False, f"missing required slots: {', '.join(missing)}")
    return StartDecision(True, "ok", workflow)
