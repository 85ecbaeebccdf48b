"""Which detected intents start which workflow: plain rules, no I/O."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from shared.contracts.intent import INTENTS, IntentDetected


@dataclass(frozen=True)
class StartDecision:
    start: bool
    reason: str
    workflow_type: str | None = None


def decide_start(event: IntentDetected, deployed_types: Collection[str]) -> StartDecision:
    """Whether a detected intent starts a workflow (of the type named like the intent), and if
    not, why."""
    if event.mode != "workflow":
        return StartDecision(False, "simple-mode intent")
    if event.needs_clarification:
        return StartDecision(False, "the intent still needs clarification")
    spec = INTENTS.get(event.intent)
    if spec is None or event.intent not in deployed_types:
        return StartDecision(False, f"no workflow is deployed for intent {event.intent!r}")
    missing = spec.missing_slots(event.slots)
    if missing:
        return StartDecision(False, f"missing required slots: {', '.join(missing)}")
    return StartDecision(True, "ok", event.intent)


def params_from_intent(event: IntentDetected) -> dict[str, Any]:
    """A workflow started by an intent gets its slots, who asked, and the message itself."""
    return {
        "slots": event.slots.model_dump(mode="json"),
        "requested_by": event.requested_by,
        "message": event.message,
    }
