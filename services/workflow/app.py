"""The workflow service's FastStream app: the engine's consumers (intents, step completions,
signals), its timers, its outbox relay, and the commands behind `/api/workflows`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from services.workflow.catalogue import load_definitions
from services.workflow.domain.definitions import DefinitionRegistry
from services.workflow.engine import Engine
from services.workflow.handlers import WorkflowCommands, start_from_intents
from services.workflow.timers import TimerLoop
from shared.actions import ACTIONS
from shared.broker import ensure_topics
from shared.consuming import Route, subscribe_events
from shared.contracts.common import Reply
from shared.contracts.intent import IntentDetected
from shared.contracts.workflow import (
    CancelWorkflowCommand,
    GetWorkflowCommand,
    ListWorkflowsCommand,
    ProvideInputCommand,
    RetryWorkflowCommand,
    StartWorkflowCommand,
    WorkflowSignal,
    WorkflowStepCompleted,
)
from shared.service import CommandContext, CommandHandler, Runtime, Started, build_app, ok
from shared.settings import Settings
from shared.topics import (
    INTENT_DETECTED,
    WORKFLOW_SIGNALS,
    WORKFLOW_STEP_COMPLETED,
    step_request_topic,
)


@dataclass(frozen=True)
class Dependencies:
    """What startup builds: the engine, its timer loop, and the commands behind the API."""

    engine: Engine
    timers: TimerLoop
    commands: WorkflowCommands


async def build_dependencies(
    settings: Settings, runtime: Runtime, definitions: DefinitionRegistry
) -> Dependencies:
    owners = {ACTIONS.get(a).owner for d in definitions for a in d.actions()}
    await ensure_topics(settings, [step_request_topic(owner) for owner in sorted(owners)])
    timers: list[TimerLoop] = []  # the engine nudges the loop, which needs the engine

    def nudge(at: datetime) -> None:
        for loop in timers:
            loop.nudge(at)

    engine = Engine(runtime.db, definitions, ACTIONS, on_timer=nudge)
    timers.append(TimerLoop(engine, runtime.db, poll_seconds=settings.workflow_timer_poll_seconds))
    timers[0].start()
    return Dependencies(engine, timers[0], WorkflowCommands(engine, runtime.db))


Build = Callable[[Settings, Runtime, DefinitionRegistry], Awaitable[Dependencies]]


def create_app(settings: Settings, build: Build = build_dependencies) -> tuple[FastStream, Runtime]:
    # Loaded here, not at startup: a bad WORKFLOW_DEFINITION_MODULES fails before connecting.
    definitions = load_definitions(settings)
    started: Started[Dependencies] = Started()

    def register(broker: KafkaBroker, runtime: Runtime) -> None:
        tracer = runtime.tracer_provider.get_tracer("workflow") if runtime.tracer_provider else None

        async def on_intents(events: list[IntentDetected]) -> None:
            await start_from_intents(started.get().engine, definitions, events)

        async def on_intent(event: IntentDetected) -> None:
            await on_intents([event])

        async def on_completed(event: WorkflowStepCompleted) -> None:
            await started.get().engine.step_completed(event)

        async def on_completed_many(events: list[WorkflowStepCompleted]) -> None:
            await started.get().engine.steps_completed(events)

        async def on_signal(event: WorkflowSignal) -> None:
            await started.get().engine.signal(event)

        # One consumer for all three: one group to join at start, one poller for the broker.
        subscribe_events(
            broker,
            settings,
            group_id="workflow.engine",
            routes={
                WORKFLOW_STEP_COMPLETED.name: Route(
                    WorkflowStepCompleted,
                    on_completed,
                    key=lambda e: e.run_id,
                    handle_many=on_completed_many,
                ),
                WORKFLOW_SIGNALS.name: Route(WorkflowSignal, on_signal, key=lambda e: e.run_id),
                INTENT_DETECTED.name: Route(
                    IntentDetected,
                    on_intent,
                    key=lambda e: e.intent_id,
                    handle_many=on_intents,
                ),
            },
            tracer=tracer,
        )

    async def startup(runtime: Runtime) -> None:
        started.set(await build(settings, runtime, definitions))

    async def shutdown(runtime: Runtime) -> None:
        if started.ready:
            await started.get().timers.stop()

    return build_app(
        "workflow",
        settings,
        register,
        commands=_command_handlers(started),
        outbox_schema="workflow",
        outbox_settle_seconds=0,  # a step's latency includes this relay twice: no waiting
        startup=startup,
        shutdown=shutdown,
    )


def _command_handlers(started: Started[Dependencies]) -> dict[type[Any], CommandHandler]:
    def answer(view: BaseModel) -> Reply:
        return ok(view)

    async def start(command: StartWorkflowCommand, _: CommandContext) -> Reply:
        return ok(await started.get().commands.start(command))

    async def get(command: GetWorkflowCommand, _: CommandContext) -> Reply:
        return ok(await started.get().commands.get(command.run_id, command.team))

    async def list_runs(command: ListWorkflowsCommand, _: CommandContext) -> Reply:
        return ok(await started.get().commands.list(command))

    async def cancel(command: CancelWorkflowCommand, _: CommandContext) -> Reply:
        return ok(await started.get().commands.cancel(command))

    async def retry(command: RetryWorkflowCommand, _: CommandContext) -> Reply:
        return ok(await started.get().commands.retry(command))

    async def provide_input(command: ProvideInputCommand, _: CommandContext) -> Reply:
        return ok(await started.get().commands.provide_input(command))

    return {
        StartWorkflowCommand: start,
        GetWorkflowCommand: get,
        ListWorkflowsCommand: list_runs,
        CancelWorkflowCommand: cancel,
        RetryWorkflowCommand: retry,
        ProvideInputCommand: provide_input,
    }
