"""The detector: mode, clarification, conversation context, and quality on the labelled sets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from services.intent.app import build_detector
from services.intent.domain.classifier import IntentClassifier, builtin_examples, load_examples
from services.intent.domain.detector import IntentDetector, PreviousTurn, answers
from services.intent.evaluate import Score
from shared.contracts.intent import INTENTS, Slots
from shared.contracts.workflow import Choice, Question
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEV_SET = REPO.parent / "shared" / "eval" / "intent_dev.jsonl"
# Labels only the slots each row names; scored on those alone.
DEV_SET_V2 = REPO.parent / "shared" / "eval" / "intent_dev_v2.jsonl"
HOLDOUT = REPO / "tests" / "data" / "intent_holdout.jsonl"


@pytest.fixture(scope="module")
def detector() -> IntentDetector:
    return build_detector(Settings())


def test_a_question_is_simple_mode(detector: IntentDetector) -> None:
    detection = detector.detect("how should I structure a technical phone screen?")
    assert (detection.mode, detection.intent) == ("simple", "inference")
    assert not detection.needs_clarification
    assert detection.slots == Slots()


def test_a_campaign_without_an_audience_asks_who(detector: IntentDetector) -> None:
    detection = detector.detect("send the outreach emails for the Data Engineer job")
    assert detection.mode == "workflow"
    assert detection.needs_clarification
    assert detection.clarification_question is not None
    assert detection.clarification_question.startswith("Who should I contact?")


def test_the_question_is_asked_in_the_users_language(detector: IntentDetector) -> None:
    german = detector.detect("Schicke die Kampagne für die Stelle als Data Engineer los")
    assert german.language == "de"
    if german.needs_clarification:
        assert german.clarification_question is not None
        assert german.clarification_question.startswith(("Wen ", "Soll "))


def test_low_confidence_asks_instead_of_guessing() -> None:
    strict = build_detector(Settings(intent_confidence_threshold=0.999))
    detection = strict.detect("maybe the java folks?")
    assert detection.needs_clarification
    assert detection.clarification_question is not None
    assert "question" in detection.clarification_question


def test_an_answer_to_a_clarification_continues_the_request(detector: IntentDetector) -> None:
    previous = PreviousTurn(
        mode="workflow",
        intent="email_campaign",
        slots=Slots(job_title="staff backend engineer"),
        needs_clarification=True,
    )
    detection = detector.detect("senior Python developers in Berlin", previous)
    assert detection.mode == "workflow"
    assert not detection.needs_clarification
    assert detection.slots == Slots(
        skills=["python"], location="berlin", seniority="senior", job_title="staff backend engineer"
    )


def test_a_new_question_after_a_clarification_is_a_new_question(detector: IntentDetector) -> None:
    previous = PreviousTurn("workflow", "email_campaign", Slots(), needs_clarification=True)
    detection = detector.detect("What is a good reply rate for recruiting emails?", previous)
    assert detection.mode == "simple"


@pytest.mark.parametrize(
    ("message", "question"),
    [
        (
            "Email the top 20000 python developers in Berlin about the Staff Backend Engineer role",
            "You asked for 20,000 candidates; one request can name at most 10,000. "
            "How many should I contact?",
        ),
        (
            "Email python developers in Berlin with 70 years of experience about the Staff "
            "Backend Engineer role",
            "70 years of experience is more than the 60 I can search for. "
            "At least how many years should they have?",
        ),
        (
            "Schreibe den top 50000 Java Entwicklern in München wegen der Rolle Backend Engineer",
            "Sie haben 50000 Kandidaten angefragt; eine Anfrage kann höchstens 10000 nennen. "
            "Wie viele soll ich kontaktieren?",
        ),
    ],
)
def test_a_number_beyond_its_slots_maximum_is_asked_about(
    detector: IntentDetector, message: str, question: str
) -> None:
    detection = detector.detect(message)
    assert detection.mode == "workflow"
    assert detection.needs_clarification
    assert detection.clarification_question == question
    assert detection.slots.limit is None
    assert detection.slots.min_years_experience is None
    assert detection.slots.skills  # the rest of the request is kept for the answer


def test_the_answer_to_a_number_question_goes_on_with_the_request(
    detector: IntentDetector,
) -> None:
    asked = detector.detect("Email the top 20000 python developers in Berlin")
    previous = PreviousTurn(asked.mode, asked.intent, asked.slots, asked.needs_clarification)
    detection = detector.detect("the top 200 then", previous)
    assert not detection.needs_clarification
    assert detection.slots.limit == 200
    assert detection.slots.skills == ["python"]


def test_the_classifier_scores_as_scikit_learn_does(detector: IntentDetector) -> None:
    """The classifier reads the trained model directly; scikit-learn's own transform and
    predict_proba must give the same probabilities, on the examples and on unseen messages."""
    classifier = detector.classifier
    texts = [e.text for e in builtin_examples()] + [e.text for e in load_examples([HOLDOUT])]
    texts += ["", "???", "Zzzz qqq", "e-mail SENIOR go devs in München!!"]
    ours = np.array([classifier.probabilities(text) for text in texts])
    assert ours == pytest.approx(classifier.library_probabilities(texts), abs=1e-12)
    assert [classifier.predict(t)[0] for t in texts[:5]] == [
        classifier.intents[int(row.argmax())] for row in ours[:5]
    ]


def test_with_more_intents_the_classifier_still_scores_as_scikit_learn_does() -> None:
    """More than two intents: a softmax over the classes instead of one logistic."""
    examples = [
        replace(e, intent="german_" + e.intent) if e.language == "de" else e
        for e in builtin_examples()
    ]
    classifier = IntentClassifier(examples)
    assert len(classifier.intents) == 8
    texts = [e.text for e in load_examples([HOLDOUT])] + ["", "Kandidaten in Berlin anschreiben"]
    ours = np.array([classifier.probabilities(text) for text in texts])
    assert ours == pytest.approx(classifier.library_probabilities(texts), abs=1e-12)


def score(path: Path, detector: IntentDetector, named_only: bool = False) -> Score:
    result = Score()
    for example in load_examples([path]):
        result.add(example, detector, named_only)
    return result


def assert_quality(result: Score, slot_f1: float) -> None:
    f1 = Score.prf(sum(result.tp.values()), sum(result.fp.values()), sum(result.fn.values()))[2]
    assert result.mode_right / result.total >= 0.97
    assert result.intent_right / result.total >= 0.97
    assert f1 >= slot_f1


@pytest.mark.skipif(
    not DEV_SET.exists(), reason="the team's evaluation set lies beside the checkout"
)
def test_quality_on_the_team_evaluation_set(detector: IntentDetector) -> None:
    assert_quality(score(DEV_SET, detector), slot_f1=0.9)


@pytest.mark.skipif(
    not DEV_SET_V2.exists(), reason="the team's evaluation set lies beside the checkout"
)
def test_quality_on_the_team_evaluation_set_with_searches_and_status(
    detector: IntentDetector,
) -> None:
    result = score(DEV_SET_V2, detector, named_only=True)
    assert_quality(result, slot_f1=0.9)
    assert {"candidate_search", "campaign_status"} <= {
        e.intent for e in load_examples([DEV_SET_V2])
    }


def test_quality_on_our_held_out_set(detector: IntentDetector) -> None:
    assert_quality(score(HOLDOUT, detector), slot_f1=0.9)


def test_the_held_out_set_covers_every_intent_in_three_languages() -> None:
    examples = load_examples([HOLDOUT])
    assert {e.intent for e in examples} == set(INTENTS)
    for language in ("de", "es"):
        assert sum(e.language == language for e in examples) >= len(examples) / 4


def test_no_held_out_message_is_trained_on() -> None:
    trained = {e.text.casefold().strip() for e in builtin_examples()}
    held_out = [e.text for e in load_examples([HOLDOUT])]
    if DEV_SET.exists():
        held_out += [e.text for e in load_examples([DEV_SET, DEV_SET_V2])]
    assert not [text for text in held_out if text.casefold().strip() in trained]


WHICH_JOB = Question(
    text="Which open job is this campaign for?",
    field="slots.job_title",
    choices=[
        Choice(label="Staff Backend Engineer (Berlin)", value="0b0e"),
        Choice(label="Data Engineer (Madrid)", value="77aa"),
    ],
)


@pytest.mark.parametrize(
    "message",
    ["2", "data engineer (madrid)", "the Staff Backend role please", "Staff Backend Engineer"],
)
def test_a_pending_question_takes_a_choice_or_what_does_not_stand_on_its_own(
    detector: IntentDetector, message: str
) -> None:
    detection = detector.decide(message, *detector.classifier.predict(message))
    assert answers(message, WHICH_JOB, detection)


@pytest.mark.parametrize(
    "message",
    [
        "what is a good reply rate for outreach?",
        "Email the senior Go developers in Amsterdam about the Platform Engineer role",
    ],
)
def test_a_request_that_stands_on_its_own_is_not_taken_as_the_answer(
    detector: IntentDetector, message: str
) -> None:
    detection = detector.decide(message, *detector.classifier.predict(message))
    assert not answers(message, WHICH_JOB, detection)
