"""The action worker on an in-memory store: a step visit's effect happens once and its result is
recorded with its completion; a failed action's savepoint rolls back while the rest of its batch
commits; a redelivered request is answered with the stored result."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel

from shared.action_worker import ActionCall, ActionFailed, ActionWorker
from shared.actions import ActionRegistry, ActionSpec
from shared.contracts.common import utcnow
from shared.contracts.workflow import WorkflowStepCompleted, WorkflowStepRequested
from tests.support.fake_action_store import FakeActionStore, effect


class Email(BaseModel):
    to: str


class Sent(BaseModel):
    message_id: str


ACTIONS = ActionRegistry()
SEND = ACTIONS.register(ActionSpec("mailer.send", Email, Sent))
DRAFT = ACTIONS.register(ActionSpec("mailer.draft", Email, Sent))
UNIMPLEMENTED = ACTIONS.register(ActionSpec("mailer.archive", Email, Sent))


def make_worker(drafted: list[str]) -> ActionWorker:
    """`mailer.send` writes its effect in the transaction, then fails for addresses at
    `bounce.test`, fails with a bug on the first attempt for `flaky` ones, and answers
    nonsense for `nonsense` ones; `mailer.draft` runs outside a transaction and notes each
    draft in `drafted`."""
    worker = ActionWorker("mailer", "mailer", ACTIONS)

    @worker.implements(SEND.name)
    async def send(email: Email, call: ActionCall) -> Sent | dict[str, object]:
        effect(call, f"sent to {email.to}")
        if email.to.endswith("@bounce.test"):
            raise ActionFailed("bounced", f"{email.to} bounced")
        if "flaky" in email.to and call.request.attempt == 1:
            raise RuntimeError("a bug")
        if "nonsense" in email.to:
            return {"id": 1}
        return Sent(message_id=f"<{email.to}>")

    @worker.implements(DRAFT.name, transactional=False)
    async def draft(email: Email, call: ActionCall) -> Sent:
        assert call.conn is None
        drafted.append(email.to)
        return Sent(message_id=f"<draft {email.to}>")

    return worker


def request(
    to: str = "ann@example.test",
    *,
    action: str = SEND.name,
    run_id: uuid.UUID | None = None,
    attempt: int = 1,
    late: bool = False,
) -> WorkflowStepRequested:
    deadline = utcnow() + (timedelta(seconds=-1) if late else timedelta(seconds=30))
    return WorkflowStepRequested(
        run_id=run_id or uuid.uuid4(), workflow_type="outreach", step_id=attempt, state="send",
        visit=1, action=action, attempt=attempt, input={"to": to}, deadline_at=deadline,
    )  # fmt: skip


def outcome(completion: WorkflowStepCompleted) -> tuple[bool, object]:
    """What a completion says: ok and its output, or failed and its error code."""
    if completion.ok:
        return True, completion.output
    assert completion.error is not None
    return False, completion.error.code


@pytest.fixture
def drafted() -> list[str]:
    return []


@pytest.fixture
def worker(drafted: list[str]) -> ActionWorker:
    return make_worker(drafted)


@pytest.fixture
def store() -> FakeActionStore:
    return FakeActionStore()


async def test_an_action_runs_and_its_result_is_recorded_with_its_completion(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    sent = request("ann@example.test")

    await worker.perform(store, sent)

    assert store.state.effects == ["sent to ann@example.test"]
    assert store.state.results == {sent.idempotency_key: {"message_id": "<ann@example.test>"}}
    [completion] = store.state.completions
    assert outcome(completion) == (True, {"message_id": "<ann@example.test>"})
    assert (completion.run_id, completion.step_id, completion.attempt) == (sent.run_id, 1, 1)


async def test_a_redelivered_request_gets_the_stored_result_without_running_again(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    first = request("ann@example.test")
    retried = request("ann@example.test", run_id=first.run_id, attempt=2)  # the same visit

    await worker.perform(store, first)
    await worker.perform(store, first)
    await worker.perform_many(store, [retried])

    assert store.state.effects == ["sent to ann@example.test"]
    assert [outcome(c) for c in store.state.completions] == [
        (True, {"message_id": "<ann@example.test>"})
    ] * 3
    assert store.state.completions[2].attempt == 2


async def test_a_failing_action_rolls_back_alone_while_its_batch_commits(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    batch = [request("ann@example.test"), request("bob@bounce.test"), request("cy@example.test")]

    await worker.perform_many(store, batch)

    assert store.transactions == 1
    assert store.state.effects == ["sent to ann@example.test", "sent to cy@example.test"]
    assert set(store.state.results) == {batch[0].idempotency_key, batch[2].idempotency_key}
    assert [(c.run_id, outcome(c)) for c in store.state.completions] == [
        (batch[0].run_id, (True, {"message_id": "<ann@example.test>"})),
        (batch[1].run_id, (False, "bounced")),
        (batch[2].run_id, (True, {"message_id": "<cy@example.test>"})),
    ]


async def test_a_failed_attempt_stores_nothing_so_its_retry_runs_again(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    first = request("flaky@example.test")
    await worker.perform(store, first)
    [failed] = store.state.completions
    assert outcome(failed) == (False, "internal")
    assert failed.error is not None
    assert failed.error.retryable
    assert (store.state.results, store.state.effects) == ({}, [])

    await worker.perform(store, request("flaky@example.test", run_id=first.run_id, attempt=2))

    assert store.state.effects == ["sent to flaky@example.test"]
    assert outcome(store.state.completions[1]) == (True, {"message_id": "<flaky@example.test>"})
    assert list(store.state.results) == [first.idempotency_key]


async def test_copies_of_a_request_in_one_batch_run_the_action_once(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    sent = request("ann@example.test")

    await worker.perform_many(store, [sent, sent])

    assert store.state.effects == ["sent to ann@example.test"]
    assert [outcome(c) for c in store.state.completions] == [
        (True, {"message_id": "<ann@example.test>"})
    ] * 2


async def test_a_request_past_its_deadline_is_skipped(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    await worker.perform_many(store, [request(late=True)])
    await worker.perform(store, request(late=True))

    assert store.state == type(store.state)()


async def test_an_action_the_owner_does_not_implement_fails_at_once(
    worker: ActionWorker, store: FakeActionStore
) -> None:
    await worker.perform_many(store, [request(action=UNIMPLEMENTED.name)])

    [completion] = store.state.completions
    assert outcome(completion) == (False, "not_implemented")
    assert completion.error is not None
    assert not completion.error.retryable


@pytest.mark.parametrize(
    ("given", "code"),
    [({"to": 3}, "invalid_input"), ({"to": "nonsense@example.test"}, "invalid_output")],
)
async def test_input_or_output_that_fails_its_schema_fails_the_step_for_good(
    worker: ActionWorker, store: FakeActionStore, given: dict[str, object], code: str
) -> None:
    bad = request().model_copy(update={"input": given})

    await worker.perform(store, bad)

    [completion] = store.state.completions
    assert completion.error is not None
    assert (completion.error.code, completion.error.retryable) == (code, False)
    assert (store.state.results, store.state.effects) == ({}, [])


async def test_a_transient_error_leaves_nothing_so_the_request_comes_again(
    store: FakeActionStore,
) -> None:
    worker = ActionWorker("mailer", "mailer", ACTIONS)

    @worker.implements(SEND.name)
    async def send(email: Email, call: ActionCall) -> Sent:
        effect(call, "half done")
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        await worker.perform_many(store, [request(), request()])

    assert store.state == type(store.state)()


async def test_a_non_transactional_action_runs_outside_and_its_result_is_recorded_once(
    worker: ActionWorker, store: FakeActionStore, drafted: list[str]
) -> None:
    first = request("ann@example.test", action=DRAFT.name)

    await worker.perform_many(store, [first])
    await worker.perform(store, first)

    assert drafted == ["ann@example.test"]
    assert store.state.results == {
        first.idempotency_key: {"message_id": "<draft ann@example.test>"}
    }
    assert [outcome(c) for c in store.state.completions] == [
        (True, {"message_id": "<draft ann@example.test>"})
    ] * 2
