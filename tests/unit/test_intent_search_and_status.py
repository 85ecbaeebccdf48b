"""Searches and campaign status questions are answered at once (mode simple): a search never
starts a campaign, whatever language it is asked in."""

from __future__ import annotations

import pytest

from services.intent.app import build_detector
from services.intent.domain.detector import IntentDetector, PreviousTurn
from services.workflow.domain.starting import decide_start
from shared.contracts.intent import INTENTS, IntentDetected, Slots
from shared.settings import Settings

DEPLOYED = {"email_campaign"}


@pytest.fixture(scope="module")
def detector() -> IntentDetector:
    return build_detector(Settings())


def event_for(message: str, detector: IntentDetector) -> IntentDetected:
    detection = detector.detect(message)
    return IntentDetected(
        message=message,
        mode=detection.mode,
        intent=detection.intent,
        confidence=detection.confidence,
        slots=detection.slots,
        needs_clarification=detection.needs_clarification,
    )


@pytest.mark.parametrize(
    ("message", "slots"),
    [
        (
            "find me junior java devs in madrid",
            Slots(skills=["java"], location="madrid", seniority="junior"),
        ),
        ("any pyhton developers in Berlin?", Slots(skills=["python"], location="berlin")),
        ("zeig mir Go Entwickler in München", Slots(skills=["go"], location="münchen")),
        (
            "¿tenemos desarrolladores de Java en Madrid?",
            Slots(skills=["java"], location="madrid"),
        ),
    ],
)
def test_a_search_is_answered_at_once_and_starts_nothing(
    detector: IntentDetector, message: str, slots: Slots
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("simple", "candidate_search")
    assert not detection.needs_clarification
    assert detection.slots == slots
    decision = decide_start(event_for(message, detector), DEPLOYED)
    assert not decision.start


def test_a_search_deployed_as_a_workflow_type_still_starts_nothing(
    detector: IntentDetector,
) -> None:
    """Even if a workflow type of that name were deployed, a simple-mode intent starts no run."""
    event = event_for("how many senior Go developers in Amsterdam do we have?", detector)
    assert event.intent == "candidate_search"
    assert not decide_start(event, {"email_campaign", "candidate_search"}).start


def test_a_search_keeps_every_criterion_it_names(detector: IntentDetector) -> None:
    detection = detector.detect("show me the top 5 senior react devs in Barcelona with 3-5 years")
    assert detection.intent == "candidate_search"
    assert detection.slots == Slots(
        skills=["react"], location="barcelona", seniority="senior", min_years_experience=3, limit=5
    )


@pytest.mark.parametrize(
    "message",
    ["how many candidates do we have?", "wie viele Kandidaten haben wir", "cuántos candidatos hay"],
)
def test_a_search_without_criteria_is_not_asked_who_to_contact(
    detector: IntentDetector, message: str
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("simple", "candidate_search")
    assert not detection.needs_clarification
    assert detection.clarification_question is None


@pytest.mark.parametrize(
    ("message", "slots"),
    [
        (
            "how is my Staff Backend Engineer campaign doing",
            Slots(job_title="staff backend engineer"),
        ),
        ("any replies on the berlin campaign", Slots(location="berlin")),
        ("status of my last campaign", Slots()),
        ("wie läuft die React-Kampagne in Köln?", Slots(skills=["react"], location="köln")),
        ("¿cómo va la campaña de Data Engineer?", Slots(job_title="data engineer")),
    ],
)
def test_a_status_question_names_the_campaign_and_starts_nothing(
    detector: IntentDetector, message: str, slots: Slots
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("simple", "campaign_status")
    assert not detection.needs_clarification
    assert detection.slots == slots
    assert not decide_start(event_for(message, detector), DEPLOYED).start


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("email the junior java devs in madrid", "email_campaign"),
        ("find me junior java devs in madrid", "candidate_search"),
        ("reach out to python developers in Berlin", "email_campaign"),
        ("how many python developers in Berlin", "candidate_search"),
        ("schreib den Go-Entwicklern in München", "email_campaign"),
        ("zeig mir die Go-Entwickler in München", "candidate_search"),
        ("contacta a los desarrolladores Java de Madrid", "email_campaign"),
        ("busca desarrolladores Java en Madrid", "candidate_search"),
    ],
)
def test_contacting_is_a_campaign_and_finding_is_a_search(
    detector: IntentDetector, message: str, intent: str
) -> None:
    assert detector.detect(message).intent == intent


def test_a_campaign_still_starts(detector: IntentDetector) -> None:
    message = "email the senior java devs in madrid about the Backend Engineer role"
    decision = decide_start(event_for(message, detector), DEPLOYED)
    assert decision.start
    assert decision.workflow_type == "email_campaign"


def test_an_audience_given_as_a_search_answers_the_campaigns_question(
    detector: IntentDetector,
) -> None:
    """After "who should I contact?", "senior Python developers in Berlin" goes on with the
    campaign even if, on its own, it reads as a search."""
    previous = PreviousTurn(
        "workflow", "email_campaign", Slots(job_title="data engineer"), needs_clarification=True
    )
    detection = detector.detect("show me senior Python developers in Berlin", previous)
    assert (detection.mode, detection.intent) == ("workflow", "email_campaign")
    assert detection.slots.skills == ["python"]
    assert detection.slots.job_title == "data engineer"


def test_the_new_intents_are_simple_and_carry_their_slots() -> None:
    assert INTENTS["candidate_search"].mode == "simple"
    assert INTENTS["campaign_status"].mode == "simple"
    assert not INTENTS["candidate_search"].needs_audience
    full = Slots(
        skills=["go"], location="berlin", seniority="senior", min_years_experience=3,
        job_title="backend engineer", limit=5,
    )  # fmt: skip
    assert INTENTS["candidate_search"].keep(full) == full
    assert INTENTS["campaign_status"].keep(full) == Slots(
        skills=["go"], location="berlin", job_title="backend engineer"
    )
    assert INTENTS["inference"].keep(full) == Slots()


def test_a_status_question_after_who_to_contact_is_a_new_question(
    detector: IntentDetector,
) -> None:
    previous = PreviousTurn("workflow", "email_campaign", Slots(), needs_clarification=True)
    detection = detector.detect("how is the Berlin campaign doing?", previous)
    assert (detection.mode, detection.intent) == ("simple", "campaign_status")
    assert detection.slots == Slots(location="berlin")


# -- what recruiters ask, part three: messages written for these tests -------------------------


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("has someone written back to the ux researcher emails", "ux researcher"),
        ("how many clicked on my sre mails", "sre"),
        ("any replies on the head of data outreach?", "head of data"),
        ("did the firmware engineer messages bounce", "firmware engineer"),
        ("schon Antworten auf meine Data Analyst Mails?", "data analyst"),
        ("wie viele haben die SRE Nachrichten aufgemacht", "sre"),
        ("hat wer auf die Mails für den Cloud Architect reagiert", "cloud architect"),
        ("alguien contestó a los mensajes de product designer", "product designer"),
        ("cuántos abrieron mis correos del sre", "sre"),
        ("hay respuestas al outreach de head of data?", "head of data"),
    ],
)
def test_a_status_question_about_the_mails_of_a_job_names_no_campaign_word(
    detector: IntentDetector, message: str, title: str
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("simple", "campaign_status")
    assert detection.slots == Slots(job_title=title)


@pytest.mark.parametrize(
    "message",
    [
        "why do candidates hardly ever answer cold emails?",
        "warum antwortet kaum jemand auf Recruiting-Mails?",
        "por qué los candidatos casi nunca contestan los correos en frío",
    ],
)
def test_why_nobody_answers_in_general_is_a_question(
    detector: IntentDetector, message: str
) -> None:
    assert detector.detect(message).intent == "inference"


@pytest.mark.parametrize(
    ("message", "skills", "excluded"),
    [
        ("who knows spark but not hadoop", ["spark"], ["hadoop"]),
        ("who does vue but no angular", ["vue"], ["angular"]),
        ("wer kann golang aber kein rust", ["go"], ["rust"]),
        ("wer kennt azure aber nicht aws", ["azure"], ["aws"]),
        ("quién sabe django pero no flask", ["django"], ["flask"]),
        ("quien conoce kotlin pero no swift", ["kotlin"], ["swift"]),
    ],
)
def test_a_search_with_a_negation_is_a_search(
    detector: IntentDetector, message: str, skills: list[str], excluded: list[str]
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("simple", "candidate_search")
    assert detection.slots == Slots(skills=skills, exclude_skills=excluded)


@pytest.mark.parametrize(
    ("message", "skill", "city"),
    [
        ("any swift ppl in berlin?", "swift", "berlin"),
        ("rust folks in madrid?", "rust", "madrid"),
        ("node leute in münchen?", "node.js", "münchen"),
        ("hay gente de react en sevilla?", "react", "sevilla"),
        ("alguien de go en bilbao", "go", "bilbao"),
    ],
)
def test_a_short_search_keeps_a_skill_that_is_also_a_word(
    detector: IntentDetector, message: str, skill: str, city: str
) -> None:
    detection = detector.detect(message)
    assert detection.intent == "candidate_search"
    assert detection.slots == Slots(skills=[skill], location=city)


@pytest.mark.parametrize(
    ("message", "slots"),
    [
        ("kandidaten in frankreich die java können", Slots(skills=["java"], country="FR")),
        ("wer in italien kann kotlin", Slots(skills=["kotlin"], country="IT")),
        (
            "cuántos devs de php hay solo presencial en málaga",
            Slots(skills=["php"], location="málaga", remote=False),
        ),
        (
            "how many onsite-only rust devs in porto",
            Slots(skills=["rust"], location="porto", remote=False),
        ),
    ],
)
def test_who_and_how_many_are_searches(
    detector: IntentDetector, message: str, slots: Slots
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("simple", "candidate_search")
    assert detection.slots == slots


@pytest.mark.parametrize(
    ("message", "slots"),
    [
        (
            "schreib kotlin leuten in köln, 3-5 jahre, mobile engineer stelle",
            Slots(
                skills=["kotlin"], location="köln", min_years_experience=3,
                job_title="mobile engineer",
            ),
        ),
        (
            "contacta a devs de ruby en valencia para el puesto de sre",
            Slots(skills=["ruby"], location="valencia", job_title="sre"),
        ),
        (
            "escribe a perfiles de go en madrid por lo del platform engineer",
            Slots(skills=["go"], location="madrid", job_title="platform engineer"),
        ),
    ],
)  # fmt: skip
def test_a_campaigns_job_title_takes_no_city_or_years(
    detector: IntentDetector, message: str, slots: Slots
) -> None:
    detection = detector.detect(message)
    assert (detection.mode, detection.intent) == ("workflow", "email_campaign")
    assert detection.slots == slots


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        # the first or best N people we have is a search, not a mailing
        ("only the first 4 staff engineers with kotlin", "candidate_search"),
        ("zeig die ersten 4 Staff Engineers mit Kotlin", "candidate_search"),
        ("enséñame los 4 primeros staff engineers con kotlin", "candidate_search"),
        # whether the people written to answered is a status question
        ("did the kotlin people in york write back yet", "campaign_status"),
        ("haben die kotlin leute aus ulm schon geantwortet", "campaign_status"),
        ("ya respondieron los devs kotlin de cádiz", "campaign_status"),
        # a campaign led by its job and a colon, or ruling people out, is still a campaign
        ("campaign for the backend engineer role: kotlin devs in york", "email_campaign"),
        ("anschreiben für Backend Engineer (m/w/d): kotlin Leute in Ulm", "email_campaign"),
        ("campaña para backend engineer: devs kotlin en cádiz, sin php", "email_campaign"),
        # a question about technologies is a question, skills and all
        ("what do kotlin and scala have in common", "inference"),
        ("was haben kotlin und scala gemeinsam", "inference"),
        ("qué tienen en común kotlin y scala", "inference"),
    ],
)
def test_lists_replies_colons_and_tech_questions_go_to_their_intent(
    detector: IntentDetector, message: str, intent: str
) -> None:
    assert detector.detect(message).intent == intent


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        # how an outreach is going, asked about its audience
        ("läuft die mailaktion an die swift leute in bonn gut?", "campaign_status"),
        ("va bien la campaña a los devs scala de cadiz?", "campaign_status"),
        ("en que punto esta el outreach para el puesto de qa engineer", "campaign_status"),
        # who in the pool knows a skill and has some years
        ("wer von den kandidaten kann rust und hat ab 2 jahren erfahrung", "candidate_search"),
        # "Ansprache" is contacting
        ("ansprache der python leute in bonn wegen data engineer", "email_campaign"),
    ],
)
def test_status_search_and_campaign_in_chat_shorthand(
    detector: IntentDetector, message: str, intent: str
) -> None:
    assert detector.detect(message).intent == intent
