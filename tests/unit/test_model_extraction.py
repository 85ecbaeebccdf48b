"""A language model's answer about a message is trusted only when it fits the schema."""

from __future__ import annotations

import json

import pytest

from services.intent.domain.model_extraction import parse
from services.intent.domain.vocabulary import Vocabulary, load_vocabulary
from shared.contracts.intent import Slots


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return load_vocabulary()


def test_a_valid_answer_is_normalised(vocabulary: Vocabulary) -> None:
    answer = json.dumps(
        {
            "mode": "workflow",
            "intent": "email_campaign",
            "slots": {
                "skills": ["Golang", "Postgres", "go"],
                "location": "Berlin",
                "job_title": "Staff Backend Engineer",
                "limit": 10,
            },
        }
    )
    extraction = parse(f"Sure! Here it is:\n```json\n{answer}\n```", vocabulary)
    assert extraction is not None
    assert extraction.intent == "email_campaign"
    assert extraction.slots == Slots(
        skills=["go", "postgresql"], location="berlin", job_title="staff backend engineer", limit=10
    )


@pytest.mark.parametrize(
    "answer",
    [
        "I think they want to send emails.",
        "{not json}",
        json.dumps({"mode": "workflow", "intent": "book_flights", "slots": {}}),
        json.dumps({"mode": "simple", "intent": "email_campaign", "slots": {}}),
        json.dumps({"mode": "workflow", "intent": "email_campaign", "slots": {"limit": -3}}),
        json.dumps({"mode": "workflow", "intent": "email_campaign", "slots": {"seniority": "god"}}),
        json.dumps({"mode": "workflow", "intent": "email_campaign", "slots": {"colour": "red"}}),
    ],
)
def test_an_answer_outside_the_schema_is_not_trusted(vocabulary: Vocabulary, answer: str) -> None:
    assert parse(answer, vocabulary) is None
