"""The workflow state machine and definition checks, without Kafka or PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from services.workflow.domain.definitions import (
    Definition,
    DefinitionError,
    DefinitionRegistry,
    End,
    Retry,
    Task,
    UnknownWorkflowType,
    Wait,
)
from services.workflow.domain.machine import (
    INPUT_DEADLINE,
    AwaitSignal,
    Finish,
    Machine,
    NotApplicable,
    RequestStep,
    RetryLater,
    Run,
    RunContext,
    with_answers,
)
from shared.actions import ActionRegistry, ActionSpec
from shared.contracts.workflow import INPUT_SIGNAL, NEEDS_INPUT, Choice, Question, StepError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Params(BaseModel):
    audience: str


class Found(BaseModel):
    count: int


class SendInput(BaseModel):
    audience: str
    count: int


ACTIONS = ActionRegistry()
ACTIONS.register(ActionSpec("crm.find", Params, Found))
ACTIONS.register(ActionSpec("crm.send", SendInput, Found))

DEFINITION = Definition(
    name="outreach",
    version=1,
    params=Params,
    start="find",
    states={
        "find": Task(
            "crm.find",
            next="review",
            retry=Retry(max_attempts=3, initial_delay=timedelta(seconds=1), jitter=0),
        ),
        "review": Wait("approved", next="send", deadline=timedelta(hours=1), on_deadline="expired"),
        "send": Task(
            "crm.send",
            next="done",
            input=lambda run: {
                "audience": run.params["audience"],
                "count": run.outputs["find"]["count"],
            },
        ),
        "done": End(),
        "expired": End("expired"),
        "failed": End("failed"),
    },
)
MACHINE = Machine(DEFINITION, ACTIONS)


def new_run() -> Run:
    return Run(run_id="r1", status="pending", state=None, params={"audience": "berlin"})


def never_random() -> float:
    return 0.5


def test_start_requests_the_first_step_with_the_params_as_input() -> None:
    transition = MACHINE.start(new_run(), NOW)
    assert transition.run.status == "running"
    assert transition.run.state == "find"
    assert (transition.run.visit, transition.run.attempt) == (1, 1)
    assert transition.effect == RequestStep(
        "crm.find", {"audience": "berlin"}, NOW + timedelta(seconds=30)
    )
    assert transition.wake_at == NOW + timedelta(seconds=30)  # the step's timeout


def test_success_stores_the_output_and_enters_the_wait_with_its_deadline() -> None:
    running = MACHINE.start(new_run(), NOW).run
    transition = MACHINE.step_succeeded(running, {"count": 7}, NOW)
    assert transition.run.status == "waiting"
    assert transition.run.context.outputs == {"find": {"count": 7}}
    assert transition.effect == AwaitSignal("approved", NOW + timedelta(hours=1))


def test_the_next_step_input_is_built_from_params_and_earlier_outputs() -> None:
    waiting = MACHINE.step_succeeded(MACHINE.start(new_run(), NOW).run, {"count": 7}, NOW).run
    transition = MACHINE.signal_received(waiting, "approved", {"by": "ada"}, NOW)
    assert transition.run.state == "send"
    assert transition.run.context.signals == {"review": {"by": "ada"}}
    assert isinstance(transition.effect, RequestStep)
    assert transition.effect.input == {"audience": "berlin", "count": 7}


def test_a_retryable_failure_waits_with_exponential_backoff_then_fails_the_run() -> None:
    error = StepError(code="boom", message="it broke")
    run = MACHINE.start(new_run(), NOW).run
    first = MACHINE.step_failed(run, error, NOW, never_random)
    assert first.effect == RetryLater(NOW + timedelta(seconds=1), error)
    second_try = MACHINE.retry_due(first.run, NOW).run
    assert second_try.attempt == 2
    second = MACHINE.step_failed(second_try, error, NOW, never_random)
    assert second.effect == RetryLater(NOW + timedelta(seconds=2), error)
    third_try = MACHINE.retry_due(second.run, NOW).run
    final = MACHINE.step_failed(third_try, error, NOW, never_random)
    assert final.effect == Finish("failed")
    assert final.run.status == "failed"
    assert final.run.failed_state == "find"
    assert final.run.error == "state 'find': crm.find failed after 3 attempts: boom: it broke"


def test_jitter_spreads_delays_within_its_fraction() -> None:
    retry = Retry(initial_delay=timedelta(seconds=10), jitter=0.2)
    assert retry.delay(1, lambda: 0.0) == timedelta(seconds=8)
    assert retry.delay(1, lambda: 1.0) == timedelta(seconds=12)
    assert retry.delay(20, lambda: 0.5) == retry.max_delay  # capped


def test_a_non_retryable_failure_fails_at_once() -> None:
    run = MACHINE.start(new_run(), NOW).run
    error = StepError(code="invalid_input", message="no", retryable=False)
    assert MACHINE.step_failed(run, error, NOW, never_random).run.status == "failed"


def test_an_output_that_breaks_the_schema_fails_the_step_without_retry() -> None:
    run = MACHINE.start(new_run(), NOW).run
    transition = MACHINE.step_succeeded(run, {"count": "many"}, NOW)
    assert transition.run.status == "failed"
    assert "invalid_output" in (transition.run.error or "")


def test_retrying_a_failed_run_resumes_its_failed_state_with_a_new_visit() -> None:
    run = MACHINE.start(new_run(), NOW).run
    fatal = StepError(code="x", message="y", retryable=False)
    failed = MACHINE.step_failed(run, fatal, NOW, never_random).run
    resumed = MACHINE.retry_failed(failed, NOW)
    assert resumed.run.status == "running"
    assert (resumed.run.state, resumed.run.visit, resumed.run.attempt) == ("find", 2, 1)
    assert resumed.run.error is None


def test_a_wait_deadline_moves_the_run_on() -> None:
    waiting = MACHINE.step_succeeded(MACHINE.start(new_run(), NOW).run, {"count": 1}, NOW).run
    assert MACHINE.wait_expired(waiting, NOW).run.status == "expired"


def test_events_that_do_not_fit_the_run_change_nothing() -> None:
    running = MACHINE.start(new_run(), NOW).run
    with pytest.raises(NotApplicable):
        MACHINE.signal_received(running, "approved", {}, NOW)  # not waiting yet
    waiting = MACHINE.step_succeeded(running, {"count": 1}, NOW).run
    with pytest.raises(NotApplicable):
        MACHINE.step_succeeded(waiting, {"count": 2}, NOW)  # a late completion
    with pytest.raises(NotApplicable):
        MACHINE.signal_received(waiting, "rejected", {}, NOW)  # another signal
    cancelled = MACHINE.cancel(waiting).run
    with pytest.raises(NotApplicable):
        MACHINE.cancel(cancelled)
    with pytest.raises(NotApplicable):
        MACHINE.retry_failed(cancelled, NOW)


def test_an_input_that_cannot_be_built_fails_the_run_with_the_reason() -> None:
    waiting = MACHINE.step_succeeded(MACHINE.start(new_run(), NOW).run, {"count": 1}, NOW).run
    broken = waiting.__class__(**{**waiting.__dict__, "params": {}})  # no audience
    transition = MACHINE.signal_received(broken, "approved", {}, NOW)
    assert transition.run.status == "failed"
    assert "invalid_input" in (transition.run.error or "")


def test_invalid_definitions_are_refused_with_every_problem() -> None:
    broken = Definition(
        name="Broken Type",
        version=1,
        start="begin",
        states={
            "first": Task("crm.nothing", next="nowhere"),
            "wait": Wait("x", next="done", deadline=timedelta(seconds=1)),
            "done": End(),
        },
    )
    with pytest.raises(DefinitionError) as caught:
        DefinitionRegistry(ACTIONS).register(broken)
    message = str(caught.value)
    for problem in (
        "name 'Broken Type'",
        "start state 'begin' does not exist",
        "goes to 'nowhere'",
        "unknown action 'crm.nothing'",
        "needs both a deadline and on_deadline",
    ):
        assert problem in message


def test_unreachable_states_are_refused() -> None:
    definition = Definition(
        name="orphans",
        version=1,
        start="done",
        states={"done": End(), "lost": End("failed")},
    )
    with pytest.raises(DefinitionError, match="'lost' cannot be reached"):
        DefinitionRegistry(ACTIONS).register(definition)


def test_runs_keep_their_version_while_new_runs_get_the_latest() -> None:
    registry = DefinitionRegistry(ACTIONS)
    registry.register(DEFINITION)
    v2 = Definition(
        name="outreach",
        version=2,
        params=Params,
        start="find",
        states={"find": Task("crm.find", next="done"), "done": End(), "failed": End("failed")},
    )
    registry.register(v2)
    assert registry.latest("outreach") is v2
    assert registry.get("outreach", 1) is DEFINITION
    with pytest.raises(UnknownWorkflowType, match="known types: outreach"):
        registry.latest("nope")


# --- Questions a run waits on -------------------------------------------------------------


def asked_run() -> Run:
    """A run whose `find` step asked which audience to use, offering two."""
    started = MACHINE.start(new_run(), NOW).run
    question = Question(
        text="Which audience?",
        field="audience",
        choices=[
            Choice(label="Amsterdam engineers", value="amsterdam"),
            Choice(label="All", value="*"),
        ],
    )
    error = StepError(code=NEEDS_INPUT, message=question.text, retryable=False, question=question)
    transition = MACHINE.step_failed(started, error, NOW, random=lambda: 0.5)
    assert transition.change == "needs_input"
    assert transition.effect == AwaitSignal(INPUT_SIGNAL, NOW + INPUT_DEADLINE)
    return transition.run


def test_a_step_that_needs_input_waits_in_its_state_for_the_answer() -> None:
    run = asked_run()
    assert (run.status, run.state, run.error) == ("waiting", "find", None)
    assert run.context.question is not None
    assert run.context.question["state"] == "find"
    assert MACHINE.waiting_for(run) == INPUT_SIGNAL
    with pytest.raises(NotApplicable):
        MACHINE.signal_received(run, "approved", {}, NOW)


@pytest.mark.parametrize("answer", ["1", "amsterdam engineers", "AMSTERDAM"])
def test_an_answer_picks_a_choice_and_the_step_runs_again_with_it(answer: str) -> None:
    transition = MACHINE.signal_received(asked_run(), INPUT_SIGNAL, {"answer": answer}, NOW)
    assert isinstance(transition.effect, RequestStep)
    assert transition.effect.input == {"audience": "amsterdam"}
    run = transition.run
    assert (run.status, run.state, run.context.question) == ("running", "find", None)
    assert run.params == {"audience": "berlin"}  # how it started stays as it was
    assert run.data().params == {"audience": "amsterdam"}


def test_free_text_is_taken_as_it_is() -> None:
    transition = MACHINE.signal_received(asked_run(), INPUT_SIGNAL, {"answer": " Go  devs "}, NOW)
    assert isinstance(transition.effect, RequestStep)
    assert transition.effect.input == {"audience": "Go devs"}


def test_an_empty_answer_asks_again_until_the_first_deadline() -> None:
    run = asked_run()
    with pytest.raises(ValueError, match="empty"):
        MACHINE.check_answer(run, "   ")
    again = MACHINE.signal_received(run, INPUT_SIGNAL, {"answer": " "}, NOW + timedelta(hours=1))
    assert again.change == "needs_input"
    assert again.effect == AwaitSignal(INPUT_SIGNAL, NOW + INPUT_DEADLINE)
    assert again.run.context.question is not None
    assert again.run.context.question["text"].endswith("Which audience?")


def test_no_answer_in_time_expires_the_run() -> None:
    expired = MACHINE.wait_expired(asked_run(), NOW + INPUT_DEADLINE)
    assert expired.effect == Finish("expired")
    assert expired.run.status == "expired"
    assert "Which audience?" in (expired.run.error or "")


def test_a_run_waiting_on_no_question_takes_no_answer() -> None:
    with pytest.raises(NotApplicable):
        MACHINE.check_answer(new_run(), "1")


def test_answers_survive_storage() -> None:
    run = MACHINE.signal_received(asked_run(), INPUT_SIGNAL, {"answer": "2"}, NOW).run
    stored = RunContext.from_json(json.loads(json.dumps(run.context.to_json())))
    assert stored == run.context
    assert with_answers({"a": {"b": 1}}, {"a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
