"""Event contracts: versions, upcasting, derived ids, and the AsyncAPI snapshot."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from deploy import asyncapi
from shared.contracts.common import Event
from shared.contracts.intent import IntentDetected, Slots, workflow_id_for_intent

REPO = Path(__file__).resolve().parents[2]


class Renamed(Event):
    """A test event whose v1 called `city` what v2 calls `location`."""

    SCHEMA_VERSION: ClassVar[int] = 2
    location: str


@Renamed.upcaster(1)
def _city_to_location(data: dict[str, Any]) -> dict[str, Any]:
    data["location"] = data.pop("city")
    return data


def test_every_event_has_id_version_time_and_correlation() -> None:
    event = IntentDetected(mode="simple", intent="inference", confidence=0.9)
    payload = json.loads(event.model_dump_json())
    assert {"event_id", "schema_version", "occurred_at", "correlation_id"} <= payload.keys()
    assert payload["schema_version"] == 1
    assert IntentDetected.model_validate(payload) == event


def test_old_payload_is_upcast() -> None:
    old = {"schema_version": 1, "correlation_id": "c1", "city": "Berlin"}
    event = Renamed.model_validate(old)
    assert event.location == "Berlin"
    assert event.schema_version == 2


def test_payload_from_the_future_is_refused_clearly() -> None:
    with pytest.raises(ValidationError, match="newer than this consumer understands"):
        IntentDetected.model_validate(
            {"schema_version": 9, "mode": "simple", "intent": "inference", "confidence": 1}
        )


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = IntentDetected.model_validate(
        {"mode": "simple", "intent": "inference", "confidence": 0.5, "added_later": 1}
    )
    assert not hasattr(event, "added_later")


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "telepathy", "intent": "x", "confidence": 0.5},
        {"mode": "simple", "intent": "", "confidence": 0.5},
        {"mode": "simple", "intent": "x", "confidence": 1.5},
    ],
)
def test_invalid_events_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IntentDetected.model_validate(bad)


def test_slots_refuse_unknown_names_and_bad_values() -> None:
    with pytest.raises(ValidationError):
        Slots.model_validate({"skils": ["python"]})
    with pytest.raises(ValidationError):
        Slots.model_validate({"seniority": "wizard"})


def test_workflow_id_is_derived_from_the_intent_id() -> None:
    intent_id = uuid.uuid4()
    event = IntentDetected(
        intent_id=intent_id, mode="workflow", intent="email_campaign", confidence=1
    )
    assert event.workflow_id == workflow_id_for_intent(intent_id)
    assert event.workflow_id == workflow_id_for_intent(uuid.UUID(str(intent_id)))
    assert event.workflow_id != workflow_id_for_intent(uuid.uuid4())


def test_asyncapi_document_matches_the_contracts() -> None:
    committed = json.loads((REPO / "docs" / "asyncapi.json").read_text())
    assert asyncapi.build() == committed, (
        "the event contracts changed: regenerate with "
        "`.venv/bin/python -m deploy.asyncapi > docs/asyncapi.json` and review the diff"
    )
