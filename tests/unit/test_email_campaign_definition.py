"""The email campaign's definition (version 1) and params, run through the state machine without
Kafka or PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.campaign.domain.extraction import describe_slots
from services.workflow.builtin import EMAIL_CAMPAIGN_V1
from services.workflow.domain.definitions import DefinitionRegistry
from services.workflow.domain.machine import AwaitSignal, Finish, Machine, RequestStep, Run
from services.workflow.domain.starting import params_from_intent
from shared.actions import ACTIONS
from shared.contracts.campaign import EmailCampaignParams, ExtractCandidatesInput
from shared.contracts.intent import IntentDetected, Slots

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SLOTS = {"skills": ["python"], "location": "Berlin", "job_title": "Staff Backend Engineer"}


def new_run(**params: object) -> Run:
    validated = EmailCampaignParams.model_validate({"slots": SLOTS, **params})
    return Run(
        run_id=str(uuid.uuid4()),
        status="pending",
        state=None,
        params=validated.model_dump(mode="json"),
    )


def test_the_definition_is_valid_against_the_action_registry() -> None:
    registry = DefinitionRegistry(ACTIONS)
    assert registry.register(EMAIL_CAMPAIGN_V1) is EMAIL_CAMPAIGN_V1
    assert registry.latest("email_campaign").version == 1
    assert EMAIL_CAMPAIGN_V1.actions() == {
        "campaign.extract_candidates",
        "campaign.generate_drafts",
    }


def test_a_run_extracts_then_drafts_then_waits_for_review_until_its_deadline() -> None:
    machine = Machine(EMAIL_CAMPAIGN_V1, ACTIONS)
    run = new_run(requested_by="ada", review_hours=2)

    started = machine.start(run, NOW)
    assert started.run.state == "extract_candidates"
    assert isinstance(started.effect, RequestStep)
    extract_input = ExtractCandidatesInput.model_validate(started.effect.input)
    assert str(extract_input.campaign_id) == run.run_id
    assert extract_input.slots == Slots.model_validate(SLOTS)
    assert extract_input.requested_by == "ada"

    found = {"job_id": str(uuid.uuid4()), "job_title": "Staff Backend Engineer", "recipients": 3}
    drafting = machine.step_succeeded(started.run, found, NOW)
    assert drafting.run.state == "generate_drafts"
    assert drafting.effect == RequestStep(
        "campaign.generate_drafts", {"campaign_id": run.run_id}, NOW + timedelta(minutes=10)
    )

    waiting = machine.step_succeeded(drafting.run, {"drafted": 3, "mode": "template"}, NOW)
    assert waiting.run.state == "await_review"
    assert waiting.effect == AwaitSignal("review_finished", NOW + timedelta(hours=2))

    expired = machine.wait_expired(waiting.run, NOW + timedelta(hours=2))
    assert expired.effect == Finish("expired")


def test_a_review_finishes_the_run() -> None:
    machine = Machine(EMAIL_CAMPAIGN_V1, ACTIONS)
    run = machine.start(new_run(), NOW).run
    run = machine.step_succeeded(
        run, {"job_id": str(uuid.uuid4()), "job_title": "x", "recipients": 1}, NOW
    ).run
    run = machine.step_succeeded(run, {"drafted": 1, "mode": "template"}, NOW).run
    finished = machine.signal_received(run, "review_finished", {"by": "ada"}, NOW)
    assert finished.effect == Finish("succeeded")
    assert finished.run.state == "completed"


def test_params_from_an_intent_are_valid_and_review_waits_three_days_by_default() -> None:
    intent = IntentDetected(
        mode="workflow",
        intent="email_campaign",
        confidence=0.9,
        message="email Python developers in Berlin about the Staff Backend Engineer role",
        slots=Slots.model_validate(SLOTS),
        requested_by="ada",
    )
    params = EmailCampaignParams.model_validate(params_from_intent(intent))
    assert params.requested_by == "ada"
    assert params.review_hours == 72


@pytest.mark.parametrize(
    "params",
    [
        {},  # no slots
        {"slots": SLOTS, "review_hours": 0},
        {"slots": SLOTS, "review_hours": 721},
        {"slots": SLOTS, "colour": "blue"},
        {"slots": {**SLOTS, "skils": ["python"]}},
    ],
)
def test_invalid_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EmailCampaignParams.model_validate(params)


def test_a_failure_names_the_criteria_nobody_matched() -> None:
    slots = Slots(skills=["python", "go"], location="Berlin", seniority="senior")
    assert describe_slots(slots) == "skills python or go, location Berlin, seniority senior"
    assert describe_slots(Slots()) == "the request"
