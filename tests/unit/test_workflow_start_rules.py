"""Which detected intents start a workflow."""

from __future__ import annotations

from services.workflow.domain import decide_start
from shared.events import IntentDetected, Slots


def intent(**changes: object) -> IntentDetected:
    fields: dict[str, object] = {
        "mode": "workflow",
        "intent": "email_campaign",
        "confidence": 0.9,
        "slots": Slots(skills=["python"], location="Berlin"),
        **changes,
    }
    return IntentDetected.model_validate(fields)


def test_campaign_with_an_audience_starts() -> None:
    decision = decide_start(intent())
    assert decision.start
    assert decision.workflow is not None
    assert decision.workflow.name == "email_campaign"


def test_simple_mode_starts_nothing() -> None:
    assert decide_start(intent(mode="simple", intent="inference")).reason == "simple-mode intent"


def test_clarification_pending_starts_nothing() -> None:
    assert not decide_start(intent(needs_clarification=True)).start


def test_unknown_workflow_intent_starts_nothing() -> None:
    decision = decide_start(intent(intent="schedule_interviews"))
    assert not decision.start
    assert "schedule_interviews" in decision.reason


def test_campaign_without_anyone_to_contact_starts_nothing() -> None:
    decision = decide_start(intent(slots=Slots(job_title="Staff Backend Engineer")))
    assert not decision.start
    assert "who to contact" in decision.reason
