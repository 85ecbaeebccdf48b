"""Follow-ups: a message that refers back to the conversation's last search or campaign is that
request again, changed; the same message after anything else is read on its own."""

from __future__ import annotations

import pytest

from services.intent.app import build_detector
from services.intent.domain.detector import IntentDetector, PreviousTurn
from services.intent.domain.follow_ups import follow_up_kind
from shared.contracts.intent import Slots
from shared.settings import Settings

SEARCH = PreviousTurn(
    "simple",
    "candidate_search",
    Slots(skills=["python"], location="Berlin", seniority="senior", limit=5),
    needs_clarification=False,
)


@pytest.fixture(scope="module")
def detector() -> IntentDetector:
    return build_detector(Settings())


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("same but in Munich", "refine"),
        ("Same in Hamburg please", "refine"),
        ("what about Amsterdam?", "refine"),
        ("only those with 5+ years", "refine"),
        ("and only seniors", "refine"),
        ("dasselbe in München", "refine"),
        ("nur die mit mehr als 5 Jahren Erfahrung", "refine"),
        ("lo mismo en Madrid", "refine"),
        ("solo los que tienen 5 años de experiencia", "refine"),
        ("email them about the Staff Backend role", "email_them"),
        ("ok, write to them about the Data Engineer job", "email_them"),
        ("schreib ihnen wegen der Staff Backend Stelle", "email_them"),
        ("escríbeles sobre el puesto de Staff Backend", "email_them"),
        ("how many python developers in Munich do we have?", None),
        ("what is a good reply rate for outreach?", None),
        ("email all senior python developers in Berlin about the Staff Backend role", None),
        ("the same subject line works best?", "refine"),  # read as one only after a search
    ],
)
def test_what_a_message_reads_as_on_its_own(message: str, kind: str | None) -> None:
    assert follow_up_kind(message) == kind


def test_same_but_elsewhere_changes_the_city_and_keeps_the_rest(detector: IntentDetector) -> None:
    detection = detector.detect("same but in Munich", SEARCH)
    assert (detection.mode, detection.intent) == ("simple", "candidate_search")
    assert detection.slots == SEARCH.slots.model_copy(update={"location": "munich"})
    assert not detection.needs_clarification


def test_only_those_with_more_years_adds_a_minimum(detector: IntentDetector) -> None:
    detection = detector.detect("only those with 5+ years", SEARCH)
    assert detection.intent == "candidate_search"
    assert detection.slots == SEARCH.slots.model_copy(update={"min_years_experience": 5})


def test_email_them_turns_the_search_into_a_campaign_for_the_same_people(
    detector: IntentDetector,
) -> None:
    detection = detector.detect("email them about the Staff Backend role", SEARCH)
    assert (detection.mode, detection.intent) == ("workflow", "email_campaign")
    assert detection.slots == SEARCH.slots.model_copy(update={"job_title": "staff backend"})
    assert not detection.needs_clarification


def test_a_follow_up_of_a_campaign_is_a_campaign(detector: IntentDetector) -> None:
    campaign = PreviousTurn("workflow", "email_campaign", SEARCH.slots, needs_clarification=False)
    detection = detector.detect("same but in Hamburg", campaign)
    assert (detection.mode, detection.intent) == ("workflow", "email_campaign")
    assert detection.slots.location == "hamburg"


def test_after_a_question_for_the_model_a_follow_up_form_is_read_on_its_own(
    detector: IntentDetector,
) -> None:
    question = PreviousTurn("simple", "inference", Slots(), needs_clarification=False)
    alone = detector.detect("what about a reply rate of 10%, is that good?")
    assert detector.detect("what about a reply rate of 10%, is that good?", question) == alone
    assert detector.detect("email them about the Staff Backend role", question).slots == Slots(
        job_title="staff backend"
    )
