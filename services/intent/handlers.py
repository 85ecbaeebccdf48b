"""Command handlers of the intent service, given their dependencies as arguments."""

from __future__ import annotations

import asyncpg

from services.intent import repository
from services.intent.domain.detector import (
    Detection,
    IntentDetector,
    answer_detection,
    answers,
)
from services.intent.domain.follow_ups import follow_up_kind
from services.intent.model_fallback import ModelFallback
from shared.contracts.intent import DetectIntentCommand, IntentDetected, IntentResult
from shared.contracts.workflow import INPUT_SIGNAL, WorkflowSignal
from shared.topics import INTENT_DETECTED


async def detect_intent(
    command: DetectIntentCommand,
    detector: IntentDetector,
    pool: asyncpg.Pool,
    fallback: ModelFallback | None = None,
) -> IntentResult:
    """Detect, log, and announce on `intent.detected` (through the outbox, in one transaction).
    A message the classifier is unsure of goes to the language model, when one is configured,
    before the user is asked.

    The conversation's previous turn matters only when it awaits an answer, or when the message
    is a follow-up ("same but in Munich"), which the message itself shows. So a message that is
    not a follow-up is detected without the turn first and written unless that turn awaits an
    answer, in one statement; only then is the turn read and the message detected again. A
    follow-up, and a message that may go to the model, read the turn first (the model is asked
    only when it must be)."""
    intent, confidence = detector.classifier.predict(command.message)
    detection = detector.decide(command.message, intent, confidence)
    model = fallback if fallback is not None and fallback.enabled else None
    previous = None
    if command.conversation_id:
        # A follow-up ("same but in Munich") is read with the turn it refers back to.
        if not (detection.unsure and model is not None) and follow_up_kind(command.message) is None:
            event = _event(command, detection)
            if await repository.log_and_announce_unless_awaited(
                pool, event, detection, INTENT_DETECTED.name
            ):
                return _result(event, detection)
        question = await repository.pending_question(pool, command.conversation_id, command.team)
        if question is not None and answers(command.message, question.question, detection):
            answered = await _answer(command, question, pool)
            if answered is not None:
                return answered
        previous = await repository.previous_turn(pool, command.conversation_id, command.team)
        detection = detector.decide(command.message, intent, confidence, previous)
    if detection.unsure and model is not None:
        extraction = await model.extract(command.message, command.correlation_id)
        if extraction is not None:
            detection = detector.adopt(command.message, extraction, previous)
    event = _event(command, detection)
    await repository.log_and_announce(pool, event, detection, INTENT_DETECTED.name)
    return _result(event, detection)


async def _answer(
    command: DetectIntentCommand, question: repository.PendingQuestion, pool: asyncpg.Pool
) -> IntentResult | None:
    """The message answers the question a run of this conversation waits on: log it as the
    conversation's turn and send it to the run, which goes on from the step that asked. None
    when the question was answered meanwhile (the message is then read as usual)."""
    detection = answer_detection(command.message)
    turn = _event(command, detection)
    signal = WorkflowSignal(
        run_id=question.run_id,
        name=INPUT_SIGNAL,
        payload={"answer": command.message, "by": command.requested_by},
        sent_by="intent",
        correlation_id=command.correlation_id,
    )
    if not await repository.log_answer(pool, turn, detection, question, signal):
        return None
    return _result(turn, detection).model_copy(update={"workflow_id": question.run_id})


def _event(command: DetectIntentCommand, detection: Detection) -> IntentDetected:
    return IntentDetected(
        correlation_id=command.correlation_id,
        conversation_id=command.conversation_id,
        message=command.message,
        requested_by=command.requested_by,
        team=command.team,
        mode=detection.mode,
        intent=detection.intent,
        confidence=detection.confidence,
        slots=detection.slots,
        needs_clarification=detection.needs_clarification,
    )


def _result(event: IntentDetected, detection: Detection) -> IntentResult:
    starts_workflow = detection.mode == "workflow" and not detection.needs_clarification
    return IntentResult(
        intent_id=event.intent_id,
        mode=detection.mode,
        intent=detection.intent,
        confidence=detection.confidence,
        slots=detection.slots,
        needs_clarification=detection.needs_clarification,
        language=detection.language,
        clarification_question=detection.clarification_question,
        detected_by=detection.detected_by,
        workflow_id=event.workflow_id if starts_workflow else None,
    )
