"""The workflow service's FastStream app: the engine's consumers (intents, step completions,
signals), its timers, its outbox relay, and the commands behind `/api/workflows`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker

from services.workflow.catalogue import load_definitions
from services.workflow.domain.definitions import DefinitionRegistry
from services.workflow.engine import Engine
from services.workflow.handlers import WorkflowCommands, start_from_intents
from services.workflow.timers import TimerLoop
from shared.actions import ACTIONS
from shared.broker import ensure_topics
from shared.consuming import Route, subscribe_events
from shared.events import IntentDetected, Reply, WorkflowSignal, WorkflowStepCompleted
from shared.service import CommandContext, CommandHandler, Runtime, build_app
from shared.settings import Settings
from shared.topics import (
    INTENT_DETECTED,
    WORKFLOW_SIGNALS,
    WORKFLOW_STEP_COMPLETED,
    step_request_topic,
)
from shared.workflow_api import (
    CancelWorkflowCommand,
    GetWorkflowCommand,
    ListWorkflowsCommand,
    RetryWorkflowCommand,
    StartWorkflowCommand,
)


@dataclass
class Parts:
    """What the startup hook creates; handlers reach it once the service runs."""

    definitions: DefinitionRegistry
    engine: Engine | None = None
    timers: TimerLoop | None = None
    commands: WorkflowCommands | None = None

    def live_engine(self) -> Engine:
        assert self.engine is not None, "the engine is created in the startup hook"
        return self.engine

    def nudge_timers(self, at: datetime) -> None:
        if self.timers is not None:
            self.timers.nudge(at)

    def live_commands(self) -> WorkflowCommands:
        assert self.commands is not None, "the commands are created in the startup hook"
        return self.commands


def create_app(settings: Settings) -> tuple[FastStream, Runtime]:
    parts = Parts(definitions=load_definitions(settings))

    def register(broker: KafkaBroker, runtime: Runtime) -> None:
        tracer = runtime.tracer_provider.get_tracer("workflow") if runtime.tracer_provider else None

        async def on_intents(events: list[IntentDetected]) -> None:
            await start_from_intents(parts.live_engine(), parts.definitions, events)

        async def on_intent(event: IntentDetected) -> None:
            await on_intents([event])

        async def on_completed(event: WorkflowStepCompleted) -> None:
            await parts.live_engine().step_completed(event)

        async def on_completed_many(events: list[WorkflowStepCompleted]) -> None:
            await parts.live_engine().steps_completed(events)

        async def on_signal(event: WorkflowSignal) -> None:
            await parts.live_engine().signal(event)

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
        owners = {ACTIONS.get(a).owner for d in parts.definitions for a in d.actions()}
        await ensure_topics(settings, [step_request_topic(owner) for owner in sorted(owners)])
        engine = Engine(runtime.db, parts.definitions, ACTIONS, on_timer=parts.nudge_timers)
        parts.timers = TimerLoop(
            engine, runtime.db, poll_seconds=settings.workflow_timer_poll_seconds
        )
        parts.engine = engine
        parts.commands = WorkflowCommands(engine, runtime.db)
        parts.timers.start()

    async def shutdown(runtime: Runtime) -> None:
        if parts.timers is not None:
            await parts.timers.stop()

    return build_app(
        "workflow",
        settings,
        register,
        commands=_command_handlers(parts),
        outbox_schema="workflow",
        outbox_settle_seconds=0,  # a step's latency includes this relay twice: no waiting
        startup=startup,
        shutdown=shutdown,
    )


def _command_handlers(parts: Parts) -> dict[type[Any], CommandHandler]:
    async def start(command: StartWorkflowCommand, _: CommandContext) -> Reply:
        return await parts.live_commands().start(command)

    async def get(command: GetWorkflowCommand, _: CommandContext) -> Reply:
        return await parts.live_commands().get(command)

    async def list_runs(command: ListWorkflowsCommand, _: CommandContext) -> Reply:
        return await parts.live_commands().list(command)

    async def cancel(command: CancelWorkflowCommand, _: CommandContext) -> Reply:
        return await parts.live_commands().cancel(command)

    async def retry(command: RetryWorkflowCommand, _: CommandContext) -> Reply:
        return await parts.live_commands().retry(command)

    return {
        StartWorkflowCommand: start,
        GetWorkflowCommand: get,
        ListWorkflowsCommand: list_runs,
        CancelWorkflowCommand: cancel,
        RetryWorkflowCommand: retry,
    }
