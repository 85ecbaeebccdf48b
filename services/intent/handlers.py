"""Command handlers of the intent service, given their dependencies as arguments."""

from __future__ import annotations

import asyncpg

from services.intent import repository
from services.intent.domain.detector import IntentDetector
from services.intent.model_fallback import ModelFallback
from shared.events import DetectIntentCommand, IntentDetected, IntentResult
from shared.topics import INTENT_DETECTED


async def detect_intent(
    command: DetectIntentCommand,
    detector: IntentDetector,
    pool: asyncpg.Pool,
    fallback: ModelFallback | None = None,
) -> IntentResult:
    """Detect, log, and announce on `intent.detected` (through the outbox, in one transaction).
    A message the classifier is unsure of goes to the language model, when one is configured,
    before the user is asked."""
    intent, confidence = detector.classifier.predict(command.message)
    previous = None
    if command.conversation_id:
        previous = await repository.previous_turn(pool, command.conversation_id)
    detection = detector.decide(command.message, intent, confidence, previous)
    if detection.unsure and fallback is not None and fallback.enabled:
        extraction = await fallback.extract(command.message, command.correlation_id)
        if extraction is not None:
            detection = detector.adopt(command.message, extraction, previous)
    decided = {
        "mode": detection.mode,
        "intent": detection.intent,
        "confidence": detection.confidence,
        "slots": detection.slots,
        "needs_clarification": detection.needs_clarification,
    }
    event = IntentDetected(
        correlation_id=command.correlation_id,
        conversation_id=command.conversation_id,
        message=command.message,
        requested_by=command.requested_by,
        **decided,
    )
    await repository.log_and_announce(pool, event, detection, INTENT_DETECTED.name)
    starts_workflow = detection.mode == "workflow" and not detection.needs_clarification
    return IntentResult(
        intent_id=event.intent_id,
        language=detection.language,
        clarification_question=detection.clarification_question,
        detected_by=detection.detected_by,
        workflow_id=event.workflow_id if starts_workflow else None,
        **decided,
    )
