"""Decide mode, intent, confidence and slots for one message, and ask instead of guessing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from services.intent.domain.classifier import IntentClassifier
from services.intent.domain.follow_ups import (
    follow_up_kind,
    followed_intent,
    follows,
    merge_slots,
)
from services.intent.domain.language import Language, detect_language
from services.intent.domain.model_extraction import ModelExtraction
from services.intent.domain.slots import CAMPAIGN_MARKERS, Reading, SlotExtractor, TooLarge
from shared.contracts.intent import ALL_SLOTS, INTENTS, IntentSpec, Mode, Slots
from shared.contracts.workflow import Question

# A reply to our clarification question continues that request unless it is, on its own, a clear
# question with no slots, or a clear question about a campaign.
_NEW_QUESTION_CONFIDENCE = 0.85
# A follow-up is recognised by rule ("same but in Munich" after a search), not by the classifier.
FOLLOW_UP_CONFIDENCE = 0.95

QUESTIONS: dict[str, dict[Language, str]] = {
    "unsure": {
        "en": "Should I answer this as a question, search our candidates, or contact "
        "candidates for you (an email campaign)?",
        "de": "Soll ich das als Frage beantworten, unsere Kandidaten durchsuchen oder für Sie "
        "Kandidaten kontaktieren (eine E-Mail-Kampagne)?",
        "es": "¿Quieres que responda a esto como una pregunta, que busque entre nuestros "
        "candidatos o que contacte a candidatos por ti (una campaña de correo)?",
    },
    "audience": {
        "en": "Who should I contact? Name skills, a city or a seniority, for example: "
        "senior Python developers in Berlin.",
        "de": "Wen soll ich kontaktieren? Nennen Sie Skills, eine Stadt oder ein Level, "
        "zum Beispiel: Senior-Python-Entwickler in Berlin.",
        "es": "¿A quién debo contactar? Indica habilidades, una ciudad o un nivel, "
        "por ejemplo: desarrolladores Python sénior en Madrid.",
    },
    # A number beyond its slot's maximum is asked about, never cut down silently or refused.
    "limit": {
        "en": "You asked for {said:,} candidates; one request can name at most {maximum:,}. "
        "How many should I contact?",
        "de": "Sie haben {said} Kandidaten angefragt; eine Anfrage kann höchstens {maximum} "
        "nennen. Wie viele soll ich kontaktieren?",
        "es": "Pediste {said} candidatos; una solicitud puede pedir como máximo {maximum}. "
        "¿A cuántos debo contactar?",
    },
    "min_years_experience": {
        "en": "{said} years of experience is more than the {maximum} I can search for. "
        "At least how many years should they have?",
        "de": "{said} Jahre Erfahrung sind mehr als die {maximum}, nach denen ich suchen kann. "
        "Wie viele Jahre sollen es mindestens sein?",
        "es": "{said} años de experiencia son más que los {maximum} que puedo buscar. "
        "¿Cuántos años como mínimo?",
    },
}


def too_large_question(too_large: TooLarge, language: Language) -> str:
    return QUESTIONS[too_large.slot][language].format(
        said=too_large.said, maximum=too_large.maximum
    )


@dataclass(frozen=True)
class PreviousTurn:
    """What was detected for the conversation's last message."""

    mode: Mode
    intent: str
    slots: Slots
    needs_clarification: bool

    @property
    def awaits_answer(self) -> bool:
        """A workflow request that asked the user for something: the next message may be the
        answer, so it is read in the light of this turn. Otherwise only a follow-up of a search
        or campaign ("same but in Munich", `follow_ups`) is read in the light of the previous
        turn, and that shows in the message itself: the intent repository's conditional write,
        made before the turn is read, relies on this."""
        return self.mode == "workflow" and self.needs_clarification


@dataclass(frozen=True)
class Detection:
    mode: Mode
    intent: str
    confidence: float
    slots: Slots
    language: Language
    needs_clarification: bool = False
    clarification_question: str | None = None
    detected_by: Literal["classifier", "language_model"] = "classifier"

    @property
    def unsure(self) -> bool:
        """Asking because the classifier is unsure, not because a slot is missing."""
        return (
            self.needs_clarification and self.clarification_question in QUESTIONS["unsure"].values()
        )


ANSWER_INTENT = "answer"  # a message that answers the question a workflow run waits on


def answer_detection(message: str) -> Detection:
    """What a message is when a run of its conversation waits on a question: the answer. It
    starts nothing (no `intent.detected`); the run gets it as its input."""
    return Detection(
        mode="workflow",
        intent=ANSWER_INTENT,
        confidence=1.0,
        slots=Slots(),
        language=detect_language(message),
    )


def answers(message: str, question: Question, detection: Detection) -> bool:
    """Whether a message in a conversation whose run waits on `question` is the answer: it
    names one of the choices, or it does not stand on its own (a request the classifier is sure
    of and that needs nothing more is a new request, and the question keeps waiting)."""
    return question.pick(message) is not None or detection.needs_clarification


class IntentDetector:
    def __init__(
        self, classifier: IntentClassifier, extractor: SlotExtractor, threshold: float
    ) -> None:
        self.classifier = classifier
        self.extractor = extractor
        self.threshold = threshold

    def detect(self, message: str, previous: PreviousTurn | None = None) -> Detection:
        intent, confidence = self.classifier.predict(message)
        return self.decide(message, intent, confidence, previous)

    def decide(
        self, message: str, intent: str, confidence: float, previous: PreviousTurn | None = None
    ) -> Detection:
        """Everything after classification: slots, conversation context, clarification."""
        language = detect_language(message)
        spec = INTENTS[intent]
        reading = self._read(message, spec)
        slots = reading.slots

        kind = follow_up_kind(message)
        if previous is not None and not previous.awaits_answer and follows(kind, previous.intent):
            assert kind is not None
            said = self.extractor.read(message)
            slots = merge_slots(previous.slots, said.slots)
            target = followed_intent(kind, previous.intent)
            return self._complete(target, FOLLOW_UP_CONFIDENCE, slots, language, said.too_large)

        if previous is not None and previous.awaits_answer:
            said = reading if spec.slot_names == ALL_SLOTS else self.extractor.read(message)
            # A question about a campaign names one ("the Berlin campaign"), not an audience.
            is_new_question = (
                spec.mode == "simple"
                and confidence >= _NEW_QUESTION_CONFIDENCE
                and (said == Reading(Slots()) or spec.name == "campaign_status")
            )
            if not is_new_question:
                spec = INTENTS[previous.intent]
                slots = merge_slots(previous.slots, said.slots)
                confidence = max(confidence if intent == spec.name else 1 - confidence, 0.5)
                return self._complete(spec.name, confidence, slots, language, said.too_large)

        if confidence < self.threshold:
            return Detection(
                mode=spec.mode,
                intent=spec.name,
                confidence=confidence,
                slots=slots,
                language=language,
                needs_clarification=True,
                clarification_question=QUESTIONS["unsure"][language],
            )
        return self._complete(spec.name, confidence, slots, language, reading.too_large)

    def _read(self, message: str, spec: IntentSpec) -> Reading:
        """The slots `spec` carries; a question for the model carries none, and a status
        question names a campaign ("the Staff Backend Engineer campaign"), not an audience."""
        if not spec.slot_names:
            return Reading(Slots())
        markers = CAMPAIGN_MARKERS if spec.name == "campaign_status" else frozenset()
        reading = self.extractor.read(message, markers)
        return replace(reading, slots=spec.keep(reading.slots))

    def adopt(
        self, message: str, extraction: ModelExtraction, previous: PreviousTurn | None = None
    ) -> Detection:
        """A language model's validated answer about a message the classifier was unsure of."""
        slots = extraction.slots
        if previous is not None and previous.awaits_answer:
            slots = merge_slots(previous.slots, slots)
        language = detect_language(message)
        detection = self._complete(extraction.intent, self.threshold, slots, language)
        return replace(detection, detected_by="language_model")

    @staticmethod
    def _complete(
        intent: str,
        confidence: float,
        slots: Slots,
        language: Language,
        too_large: TooLarge | None = None,
    ) -> Detection:
        spec = INTENTS[intent]
        slots = spec.keep(slots)
        question = None
        if spec.missing_slots(slots):
            question = QUESTIONS["audience"][language]
        elif too_large is not None and spec.mode == "workflow":
            question = too_large_question(too_large, language)
        return Detection(
            mode=spec.mode,
            intent=spec.name,
            confidence=round(confidence, 4),
            slots=slots,
            language=language,
            needs_clarification=question is not None,
            clarification_question=question,
        )
