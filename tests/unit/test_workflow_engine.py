"""The workflow engine on an in-memory run store: what it stores and which events it writes for a
start, a step's completion or failure, a timer, a signal, a cancel and a retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from services.workflow.domain.definitions import (
    NO_RETRY,
    Definition,
    DefinitionRegistry,
    End,
    Retry,
    Task,
    Wait,
)
from services.workflow.engine import (
    Engine,
    InvalidParams,
    RunConflict,
    RunNotFound,
    StartRequest,
)
from shared.actions import ActionRegistry, ActionSpec, NoOutput
from shared.contracts.workflow import (
    NEEDS_INPUT,
    Question,
    RunQuestion,
    StepError,
    WorkflowRunChanged,
    WorkflowSignal,
    WorkflowStepCompleted,
    WorkflowStepRequested,
)
from shared.topics import WORKFLOW_RUN_CHANGED, step_request_topic
from tests.support.fake_runs import FakeRunStore

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BACKOFF = timedelta(seconds=10)


class Audience(BaseModel):
    audience: str


class Found(BaseModel):
    count: int


ACTIONS = ActionRegistry()
FIND = ACTIONS.register(ActionSpec("crm.find", Audience, Found))
SEND = ACTIONS.register(ActionSpec("mailer.send", Audience, NoOutput))

OUTREACH = Definition(
    name="outreach",
    version=1,
    params=Audience,
    start="find",
    states={
        "find": Task(FIND.name, next="approve", retry=Retry(max_attempts=2, initial_delay=BACKOFF)),
        "approve": Wait(
            "approved", next="send", deadline=timedelta(hours=1), on_deadline="expired"
        ),
        "send": Task(SEND.name, next="done", retry=NO_RETRY),
        "done": End("succeeded"),
        "expired": End("expired"),
        "failed": End("failed"),
    },
)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class World:
    """An engine on a fake store, with a clock the test moves and the timers it was told of."""

    def __init__(self) -> None:
        definitions = DefinitionRegistry(ACTIONS)
        definitions.register(OUTREACH)
        self.store = FakeRunStore()
        self.clock = Clock()
        self.timers: list[datetime] = []
        # random() = 0.5 takes no jitter: a retry waits exactly its backoff
        self.engine = Engine(
            self.store,
            definitions,
            ACTIONS,
            clock=self.clock,
            random=lambda: 0.5,
            on_timer=self.timers.append,
        )

    async def start(self, audience: str = "nurses") -> uuid.UUID:
        started = await self.engine.start(StartRequest("outreach", {"audience": audience}))
        return started.run_id

    def requested(self) -> WorkflowStepRequested:
        """The last step request the engine wrote."""
        return [e for e in self.store.events() if isinstance(e, WorkflowStepRequested)][-1]

    def changes(self, run_id: uuid.UUID) -> list[WorkflowRunChanged]:
        return [
            e
            for e in self.store.events()
            if isinstance(e, WorkflowRunChanged) and e.run_id == run_id
        ]

    def completion(
        self, output: dict[str, object] | None = None, error: StepError | None = None
    ) -> WorkflowStepCompleted:
        """The completion of the step requested last: ok with `output`, or failed with `error`."""
        request = self.requested()
        return WorkflowStepCompleted(
            run_id=request.run_id, step_id=request.step_id, action=request.action,
            attempt=request.attempt, ok=error is None, output=output or {}, error=error,
        )  # fmt: skip

    async def complete(self, output: dict[str, object] | None = None) -> str:
        return await self.engine.step_completed(self.completion(output or {"count": 3}))

    async def fail(self, *, retryable: bool = True) -> str:
        error = StepError(code="crm_down", message="the CRM is away", retryable=retryable)
        return await self.engine.step_completed(self.completion(error=error))

    async def signal(self, run_id: uuid.UUID, name: str = "approved") -> str:
        return await self.engine.signal(
            WorkflowSignal(run_id=run_id, name=name, payload={"by": "ann"})
        )


@pytest.fixture
def world() -> World:
    return World()


async def test_a_start_enters_the_first_state_and_requests_its_step(world: World) -> None:
    run_id = await world.start()

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state, stored.run.attempt) == ("running", "find", 1)
    deadline = START + timedelta(seconds=30)  # the task's default timeout
    assert stored.wake_at == deadline
    assert world.timers == [deadline]
    [step] = world.store.steps(run_id)
    assert stored.current_step_id == step.step_id
    assert step.status == "requested"
    topics = [topic for topic, _, _ in world.store.state.outbox]
    assert topics == [step_request_topic("crm").name, WORKFLOW_RUN_CHANGED.name]
    request = world.requested()
    assert (request.step_id, request.action, request.attempt) == (step.step_id, "crm.find", 1)
    assert request.input == {"audience": "nurses"}
    assert request.deadline_at == deadline
    [changed] = world.changes(run_id)
    assert (changed.change, changed.status, changed.sequence) == ("step_requested", "running", 1)


async def test_the_same_run_started_twice_is_started_once(world: World) -> None:
    run_id = uuid.uuid4()
    request = StartRequest("outreach", {"audience": "nurses"}, run_id=run_id)

    first = await world.engine.start(request)
    events = len(world.store.events())
    again = await world.engine.start(request)

    assert (first.created, again.created, again.run_id) == (True, False, run_id)
    assert len(world.store.events()) == events
    assert len(world.store.steps(run_id)) == 1


async def test_an_idempotency_key_gives_its_run_back_but_not_for_other_params(
    world: World,
) -> None:
    request = StartRequest("outreach", {"audience": "nurses"}, idempotency_key="k1")

    first = await world.engine.start(request)
    again = await world.engine.start(request)
    assert not again.created
    assert again.run_id == first.run_id

    with pytest.raises(RunConflict):
        await world.engine.start(
            StartRequest("outreach", {"audience": "welders"}, idempotency_key="k1")
        )
    assert len(world.store.state.runs) == 1


async def test_params_that_fail_the_schema_start_nothing(world: World) -> None:
    with pytest.raises(InvalidParams, match="audience"):
        await world.engine.start(StartRequest("outreach", {"audiences": "nurses"}))
    assert world.store.state.runs == {}
    assert world.store.events() == []


async def test_start_many_starts_each_new_run_once(world: World) -> None:
    existing = await world.start()
    fresh = uuid.uuid4()
    requests = [
        StartRequest("outreach", {"audience": "nurses"}, run_id=run_id)
        for run_id in (existing, fresh, fresh)
    ]

    started = await world.engine.start_many(requests)

    assert [(s.run_id, s.created) for s in started] == [(existing, False), (fresh, True)]
    assert world.store.run(fresh).run.state == "find"
    assert len(world.store.steps(existing)) == 1
    with pytest.raises(ValueError, match="idempotency key"):
        await world.engine.start_many([StartRequest("outreach", {}, run_id=fresh,
                                                    idempotency_key="k")])  # fmt: skip


async def test_a_completion_closes_the_step_and_moves_the_run_on(world: World) -> None:
    run_id = await world.start()

    assert await world.complete({"count": 3}) == "advanced"

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state) == ("waiting", "approve")
    assert stored.run.context.outputs == {"find": {"count": 3}}
    [step] = world.store.steps(run_id)
    assert (step.status, step.output) == ("succeeded", {"count": 3})
    [wait] = world.store.waits(run_id)
    deadline = START + timedelta(hours=1)
    assert (wait.name, wait.status, wait.deadline_at) == ("approved", "waiting", deadline)
    assert stored.wake_at == deadline
    assert world.changes(run_id)[-1].change == "waiting"
    assert len([e for e in world.store.events() if isinstance(e, WorkflowStepRequested)]) == 1


async def test_a_second_copy_of_a_completion_changes_nothing(world: World) -> None:
    run_id = await world.start()
    completion = world.completion({"count": 3})

    assert await world.engine.step_completed(completion) == "advanced"
    before = (world.store.run(run_id), len(world.store.events()))
    assert await world.engine.step_completed(completion) == "duplicate"

    assert (world.store.run(run_id), len(world.store.events())) == before


async def test_copies_of_a_completion_in_one_batch_advance_the_run_once(world: World) -> None:
    run_id = await world.start()
    completion = world.completion({"count": 3})

    outcomes = await world.engine.steps_completed([completion, completion])

    assert outcomes == ["advanced", "duplicate"]
    assert world.store.run(run_id).version == 2


async def test_a_completion_for_an_unknown_run_is_ignored(world: World) -> None:
    completion = WorkflowStepCompleted(
        run_id=uuid.uuid4(), step_id=1, action="crm.find", attempt=1, ok=True
    )
    assert await world.engine.step_completed(completion) == "unknown_run"
    assert world.store.events() == []


async def test_a_failure_with_retries_left_retries_after_the_backoff(world: World) -> None:
    run_id = await world.start()

    assert await world.fail() == "advanced"

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state, stored.run.attempt) == ("running", "find", 1)
    assert stored.wake_at == START + BACKOFF
    assert stored.current_step_id is None
    [step] = world.store.steps(run_id)
    assert (step.status, step.error) == ("failed", "crm_down: the CRM is away")
    changed = world.changes(run_id)[-1]
    assert changed.change == "step_failed"
    assert changed.detail["retry_at"] == (START + BACKOFF).isoformat()
    assert len([e for e in world.store.events() if isinstance(e, WorkflowStepRequested)]) == 1

    world.clock.advance(BACKOFF - timedelta(milliseconds=1))
    assert await world.engine.wake(run_id) == "not_due"
    world.clock.advance(timedelta(milliseconds=1))
    assert await world.engine.wake(run_id) == "retried"

    retried = world.requested()
    assert (retried.attempt, retried.state, retried.visit) == (2, "find", 1)
    assert world.store.run(run_id).current_step_id == retried.step_id


async def test_a_failure_of_the_last_attempt_fails_the_run(world: World) -> None:
    run_id = await world.start()
    await world.fail()
    world.clock.advance(BACKOFF)
    await world.engine.wake(run_id)

    assert await world.fail() == "advanced"

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state, stored.run.failed_state) == (
        "failed", "failed", "find",
    )  # fmt: skip
    assert stored.run.error is not None
    assert "after 2 attempts" in stored.run.error
    assert stored.wake_at is None
    assert world.changes(run_id)[-1].status == "failed"


async def test_a_failure_that_is_not_retryable_fails_the_run_at_once(world: World) -> None:
    run_id = await world.start()

    await world.fail(retryable=False)

    assert world.store.run(run_id).run.status == "failed"


async def test_a_step_without_a_completion_in_time_times_out_and_is_retried(
    world: World,
) -> None:
    run_id = await world.start()
    late = world.completion({"count": 3})
    world.clock.advance(timedelta(seconds=30))

    assert await world.engine.wake(run_id) == "timed_out"

    [step] = world.store.steps(run_id)
    assert step.status == "timed_out"
    assert world.store.run(run_id).wake_at == world.clock.now + BACKOFF
    assert await world.engine.step_completed(late) == "duplicate"
    assert world.store.run(run_id).run.context.outputs == {}


async def test_a_signal_ends_the_wait_and_the_run_goes_on(world: World) -> None:
    run_id = await world.start()
    await world.complete()

    assert await world.signal(run_id) == "advanced"

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state) == ("running", "send")
    assert stored.run.context.signals == {"approve": {"by": "ann"}}
    [wait] = world.store.waits(run_id)
    assert wait.status == "signalled"
    assert wait.signal_id is not None
    assert world.requested().action == "mailer.send"


async def test_a_signal_that_came_before_the_wait_is_taken_when_the_run_waits(
    world: World,
) -> None:
    run_id = await world.start()

    assert await world.signal(run_id) == "stored"
    await world.complete()

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state) == ("running", "send")
    [wait] = world.store.waits(run_id)
    assert wait.status == "signalled"
    assert [c.change for c in world.changes(run_id)] == ["step_requested", "step_requested"]


async def test_a_signal_event_is_stored_once(world: World) -> None:
    run_id = await world.start()
    signal = WorkflowSignal(run_id=run_id, name="approved")

    assert await world.engine.signal(signal) == "stored"
    assert await world.engine.signal(signal) == "duplicate"
    assert len(world.store.state.signals) == 1


async def test_a_signal_the_run_does_not_wait_for_is_kept(world: World) -> None:
    run_id = await world.start()
    await world.complete()

    assert await world.signal(run_id, "rejected") == "stored"
    assert world.store.run(run_id).run.status == "waiting"
    assert await world.signal(uuid.uuid4()) == "unknown_run"


async def test_a_wait_whose_deadline_passes_expires_the_run(world: World) -> None:
    run_id = await world.start()
    await world.complete()
    world.clock.advance(timedelta(hours=1))

    assert await world.engine.wake(run_id) == "wait_expired"

    assert world.store.run(run_id).run.status == "expired"
    [wait] = world.store.waits(run_id)
    assert wait.status == "expired"


async def test_cancel_abandons_the_open_step_and_finishes_the_run(world: World) -> None:
    run_id = await world.start()
    completion = world.completion({"count": 3})

    await world.engine.cancel(run_id, by="ann")

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.error, stored.wake_at) == (
        "cancelled", "cancelled by ann", None,
    )  # fmt: skip
    [step] = world.store.steps(run_id)
    assert step.status == "abandoned"
    assert world.changes(run_id)[-1].change == "cancelled"
    events = len(world.store.events())
    await world.engine.cancel(run_id, by="ann")  # again: no change
    assert await world.engine.step_completed(completion) == "duplicate"
    assert len(world.store.events()) == events


async def test_a_finished_run_cannot_be_cancelled(world: World) -> None:
    run_id = await world.start()
    await world.fail(retryable=False)
    before = world.store.snapshot()

    with pytest.raises(RunConflict):
        await world.engine.cancel(run_id, by="ann")
    with pytest.raises(RunNotFound):
        await world.engine.cancel(uuid.uuid4(), by="ann")
    assert world.store.state == before


async def test_retry_starts_a_failed_run_again_at_the_state_that_failed(world: World) -> None:
    run_id = await world.start()
    await world.fail(retryable=False)

    await world.engine.retry(run_id)

    stored = world.store.run(run_id)
    assert (stored.run.status, stored.run.state, stored.run.error) == ("running", "find", None)
    request = world.requested()
    assert (request.state, request.visit, request.attempt) == ("find", 2, 1)
    events = len(world.store.events())
    await world.engine.retry(run_id)  # active: left alone
    assert len(world.store.events()) == events


async def test_a_run_that_did_not_fail_cannot_be_retried(world: World) -> None:
    run_id = await world.start()
    await world.complete()
    world.clock.advance(timedelta(hours=1))
    await world.engine.wake(run_id)  # expired

    with pytest.raises(RunConflict):
        await world.engine.retry(run_id)


async def test_a_change_whose_events_cannot_be_written_is_not_stored(world: World) -> None:
    run_id = await world.start()
    before = world.store.snapshot()
    world.store.fail_enqueue = True

    with pytest.raises(ConnectionError):
        await world.complete()

    assert world.store.state == before
    [step] = world.store.steps(run_id)
    assert step.status == "requested"


async def test_a_question_is_announced_when_asked_and_when_answered(world: World) -> None:
    intent_id = uuid.uuid4()
    run_id = (
        await world.engine.start(
            StartRequest("outreach", {"audience": "nurses"}, intent_id=intent_id)
        )
    ).run_id
    question = Question(text="Which audience?", field="audience")
    asking = StepError(code=NEEDS_INPUT, message=question.text, retryable=False, question=question)
    assert await world.engine.step_completed(world.completion(error=asking)) == "advanced"

    [asked] = [e for e in world.store.events() if isinstance(e, RunQuestion)]
    assert (asked.run_id, asked.intent_id) == (run_id, intent_id)
    assert asked.question is not None
    assert asked.question["text"] == "Which audience?"
    assert world.store.run(run_id).run.status == "waiting"

    assert await world.engine.provide_input(run_id, "midwives", "ann") == "advanced"
    asked_then_answered = [e for e in world.store.events() if isinstance(e, RunQuestion)]
    assert [e.question is None for e in asked_then_answered] == [False, True]
    assert world.requested().input == {"audience": "midwives"}
    assert (await world.complete()) == "advanced"  # no further question: no further event
    assert len([e for e in world.store.events() if isinstance(e, RunQuestion)]) == 2
