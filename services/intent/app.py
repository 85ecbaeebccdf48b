"""The intent service's FastStream app: answers `detect_intent` over Kafka and relays its outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faststream import FastStream
from faststream.kafka import KafkaBroker

from services.intent import handlers, repository
from services.intent.domain.classifier import IntentClassifier, builtin_examples
from services.intent.domain.detector import IntentDetector
from services.intent.domain.slots import SlotExtractor
from services.intent.domain.vocabulary import load_vocabulary
from services.intent.model_fallback import ModelFallback
from shared.broker import ensure_topics
from shared.consuming import Route, subscribe_events
from shared.contracts.common import Reply
from shared.contracts.intent import DetectIntentCommand
from shared.contracts.workflow import RunQuestion
from shared.service import CommandContext, Runtime, Started, build_app, ok
from shared.settings import Settings
from shared.topics import WORKFLOW_QUESTIONS


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
        # The workflow service creates the topic too, but this service may start first.
        await ensure_topics(settings, [WORKFLOW_QUESTIONS])
        started.set(await build(settings, runtime))

    async def detect(command: DetectIntentCommand, context: CommandContext) -> Reply:
        deps = started.get()
        result = await handlers.detect_intent(
            command, deps.detector, context.runtime.db, deps.fallback
        )
        return ok(result)

    def register(broker: KafkaBroker, runtime: Runtime) -> None:
        async def on_questions(events: list[RunQuestion]) -> None:
            await repository.track_questions(runtime.db, events)

        async def on_question(event: RunQuestion) -> None:
            await on_questions([event])

        # The questions runs ask, so that a conversation's next message can answer them.
        subscribe_events(
            broker,
            settings,
            group_id="intent.questions",
            routes={
                WORKFLOW_QUESTIONS.name: Route(
                    RunQuestion, on_question, key=lambda e: e.run_id, handle_many=on_questions
                )
            },
            background=True,
        )

    return build_app(
        "intent",
        settings,
        register,
        commands={DetectIntentCommand: detect},
        outbox_schema="intent",
        startup=startup,
        # Without a model there is nothing to ask, and no reply consumer polling the broker.
        asks_services=settings.intent_model_fallback and settings.llm_configured,
    )
