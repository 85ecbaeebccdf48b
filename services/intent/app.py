"""The intent service's FastStream app: answers `detect_intent` over Kafka and relays its outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faststream import FastStream

from services.intent import handlers
from services.intent.domain.classifier import IntentClassifier, builtin_examples
from services.intent.domain.detector import IntentDetector
from services.intent.domain.slots import SlotExtractor
from services.intent.domain.vocabulary import load_vocabulary
from services.intent.model_fallback import ModelFallback
from shared.events import DetectIntentCommand, Reply
from shared.service import CommandContext, Runtime, Started, build_app
from shared.settings import Settings


def build_detector(settings: Settings) -> IntentDetector:
    """Train the classifier from the shipped examples and load the vocabularies (about a second)."""
    return IntentDetector(
        IntentClassifier(builtin_examples()),
        SlotExtractor(load_vocabulary(settings.intent_vocabulary_dir)),
        settings.intent_confidence_threshold,
    )


@dataclass(frozen=True)
class Dependencies:
    """What startup builds: the detector (about a second to train), and the language model
    fallback when a model is configured."""

    detector: IntentDetector
    fallback: ModelFallback | None


async def build_dependencies(settings: Settings, runtime: Runtime) -> Dependencies:
    detector = build_detector(settings)
    fallback = None
    if runtime.client is not None:
        fallback = ModelFallback(runtime.client, settings, detector.extractor.vocabulary)
    return Dependencies(detector, fallback)


Build = Callable[[Settings, Runtime], Awaitable[Dependencies]]


def create_app(settings: Settings, build: Build = build_dependencies) -> tuple[FastStream, Runtime]:
    started: Started[Dependencies] = Started()

    async def startup(runtime: Runtime) -> None:
        started.set(await build(settings, runtime))

    async def detect(command: DetectIntentCommand, context: CommandContext) -> Reply:
        deps = started.get()
        result = await handlers.detect_intent(
            command, deps.detector, context.runtime.db, deps.fallback
        )
        return Reply(ok=True, data=result.model_dump(mode="json"))

    return build_app(
        "intent",
        settings,
        commands={DetectIntentCommand: detect},
        outbox_schema="intent",
        startup=startup,
        # Without a model there is nothing to ask, and no reply consumer polling the broker.
        asks_services=settings.intent_model_fallback and settings.llm_configured,
    )
