"""Which detected intents start which workflow: plain rules, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import IntentDetected, Slots


@dataclass(frozen=True)
class WorkflowType:
    name: str
    version: int

    def missing_slots(self, slots: Slots) -> list[str]:
        """Slots this workflow cannot start without."""
        if self.name == "email_campaign":
            has_audience = bool(
                slots.skills or slots.location or slots.seniority or slots.min_years_experience
            )
            return [] if has_audience else ["skills, location or seniority (who to contact)"]
        return []


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
    if workflow is None:
        return StartDecision(False, f"no workflow is registered for intent {event.intent!r}")
    missing = workflow.missing_slots(event.slots)
    if missing:
        return StartDecision(False, f"missing required slots: {', '.join(missing)}")
    return StartDecision(True, "ok", workflow)
