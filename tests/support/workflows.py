"""Workflow definitions and actions for the engine's tests, loaded into the workflow service with
WORKFLOW_DEFINITION_MODULES=tests.support.workflows. The actions are owned by `testkit`, which the
tests run in their own process (`ActionOwner`), so killing the workflow service leaves them alone.

Every action records its effect in `testkit.effects` inside the step's transaction: a test counts
the rows of a step visit to prove its effect happened exactly once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from services.workflow.domain.definitions import Definition, End, Retry, RunData, Task, Wait
from shared.action_worker import ActionCall, ActionFailed, ActionWorker
from shared.actions import action

OWNER = "testkit"
# A workflow service that runs these definitions, and fires timers quickly.
ENGINE_ENV = {
    "WORKFLOW_DEFINITION_MODULES": "tests.support.workflows",
    "WORKFLOW_TIMER_POLL_SECONDS": "0.2",
}
EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS testkit.effects (
    id          bigserial   PRIMARY KEY,
    run_id      uuid        NOT NULL,
    state       text        NOT NULL,
    visit       integer     NOT NULL,
    attempt     integer     NOT NULL,
    action      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
)
"""


class Knobs(BaseModel):
    """How a test action misbehaves, by attempt number."""

    model_config = ConfigDict(extra="forbid")

    fail_attempts: int = Field(0, ge=0, description="Attempts up to this one fail.")
    fail_visits: int = Field(0, ge=0, description="Every attempt of visits up to this one fails.")
    hang_attempts: int = Field(0, ge=0, description="Attempts up to this one take hang_seconds.")
    hang_seconds: float = Field(0, ge=0, le=30)
    delay_seconds: float = Field(0, ge=0, le=5, description="Every noop attempt takes this long.")
    wait_seconds: float | None = Field(None, gt=0, description="The approval wait's deadline.")
    tag: str = ""


class Echo(BaseModel):
    attempt: int
    state: str


NOOP = action("testkit.noop", Knobs, Echo, "Does nothing but record its effect.")
FLAKY = action("testkit.flaky", Knobs, Echo, "Fails its first `fail_attempts` attempts.")
SLOW = action("testkit.slow", Knobs, Echo, "Takes `hang_seconds` on its first attempts.")

FAST_RETRY = Retry(max_attempts=3, initial_delay=timedelta(milliseconds=50), jitter=0.1)


def _approval_deadline(run: RunData) -> timedelta | None:
    seconds = run.params.get("wait_seconds")
    return None if seconds is None else timedelta(seconds=seconds)


DEFINITIONS = [
    Definition(
        name="testkit.three_steps",
        version=1,
        params=Knobs,
        start="one",
        states={
            "one": Task(NOOP.name, next="two", retry=FAST_RETRY),
            "two": Task(NOOP.name, next="three", retry=FAST_RETRY),
            "three": Task(NOOP.name, next="done", retry=FAST_RETRY),
            "done": End("succeeded"),
            "failed": End("failed"),
        },
        description="Three steps that do nothing: the engine's own cost.",
    ),
    Definition(
        name="testkit.flaky",
        version=1,
        params=Knobs,
        start="prepare",
        states={
            "prepare": Task(NOOP.name, next="flaky"),
            "flaky": Task(FLAKY.name, next="done", retry=FAST_RETRY),
            "done": End("succeeded"),
            "failed": End("failed"),
        },
    ),
    Definition(
        name="testkit.slow",
        version=1,
        params=Knobs,
        start="slow",
        states={
            "slow": Task(
                SLOW.name,
                next="done",
                timeout=timedelta(seconds=1.5),
                retry=Retry(max_attempts=2, initial_delay=timedelta(milliseconds=100)),
            ),
            "done": End("succeeded"),
            "failed": End("failed"),
        },
    ),
    Definition(
        name="testkit.approval",
        version=1,
        params=Knobs,
        start="prepare",
        states={
            "prepare": Task(SLOW.name, next="await_approval"),
            "await_approval": Wait(
                "approved",
                next="finish",
                deadline=_approval_deadline,
                on_deadline="expired",
            ),
            "finish": Task(NOOP.name, next="done"),
            "done": End("succeeded"),
            "expired": End("expired"),
            "failed": End("failed"),
        },
    ),
]


def make_worker() -> ActionWorker:
    worker = ActionWorker(OWNER, OWNER)

    async def record(call: ActionCall) -> Echo:
        request = call.request
        assert call.conn is not None
        await call.conn.execute(
            "INSERT INTO testkit.effects (run_id, state, visit, attempt, action)"
            " VALUES ($1, $2, $3, $4, $5)",
            request.run_id, request.state, request.visit, request.attempt, request.action,
        )  # fmt: skip
        return Echo(attempt=request.attempt, state=request.state)

    @worker.implements(NOOP.name)
    async def noop(knobs: Knobs, call: ActionCall) -> Echo:
        await asyncio.sleep(knobs.delay_seconds)
        return await record(call)

    @worker.implements(FLAKY.name)
    async def flaky(knobs: Knobs, call: ActionCall) -> Echo:
        request = call.request
        if request.attempt <= knobs.fail_attempts or request.visit <= knobs.fail_visits:
            raise ActionFailed("flaky", f"attempt {request.attempt} fails on purpose")
        return await record(call)

    @worker.implements(SLOW.name)
    async def slow(knobs: Knobs, call: ActionCall) -> Echo:
        if call.request.attempt <= knobs.hang_attempts:
            await asyncio.sleep(knobs.hang_seconds)
        return await record(call)

    return worker
