"""Which detected intents start a workflow."""

from __future__ import annotations

from services.workflow.domain.starting import decide_start
from shared.contracts.intent import IntentDetected, Slots

DEPLOYED = ["email_campaign"]


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
    decision = decide_start(intent(), DEPLOYED)
    assert decision.start
    assert decision.workflow_type == "email_campaign"


def test_an_intent_whose_workflow_is_not_deployed_starts_nothing() -> None:
    decision = decide_start(intent(), deployed_types=[])
    assert not decision.start
    assert "no workflow is deployed" in decision.reason


def test_simple_mode_starts_nothing() -> None:
    assert (
        decide_start(intent(mode="simple", intent="inference"), DEPLOYED).reason
        == "simple-mode intent"
    )


def test_clarification_pending_starts_nothing() -> None:
    assert not decide_start(intent(needs_clarification=True), DEPLOYED).start


def test_unknown_workflow_intent_starts_nothing() -> None:
    decision = decide_start(intent(intent="schedule_interviews"), DEPLOYED)
    assert not decision.start
    assert "schedule_interviews" in decision.reason


def test_campaign_without_anyone_to_contact_starts_nothing() -> None:
    decision = decide_start(intent(slots=Slots(job_title="Staff Backend Engineer")), DEPLOYED)
    assert not decision.start
    assert "who to contact" in decision.reason
