"""The benchmark's workflow: three steps whose action does nothing, owned by `bench` (the
benchmark process). Loaded into the workflow service with WORKFLOW_DEFINITION_MODULES."""

from __future__ import annotations

from services.workflow.domain.definitions import Definition, End, Task
from shared.action_worker import ActionCall, ActionWorker
from shared.actions import NoOutput, action

NOOP = action("bench.noop", description="Does nothing: the engine's own cost per step.")

DEFINITIONS = [
    Definition(
        name="bench.three_steps",
        version=1,
        start="one",
        states={
            "one": Task(NOOP.name, next="two"),
            "two": Task(NOOP.name, next="three"),
            "three": Task(NOOP.name, next="done"),
            "done": End(),
            "failed": End("failed"),
        },
    )
]


def make_worker() -> ActionWorker:
    worker = ActionWorker("bench", "bench")

    @worker.implements(NOOP.name)
    async def noop(_: object, call: ActionCall) -> NoOutput:
        return NoOutput()

    return worker
