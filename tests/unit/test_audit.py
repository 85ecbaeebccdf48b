"""Audit entries: how `shared.audit` builds one (its trace id from the current span) and adds it to
an outbox, and which entries the workflow engine writes with a cancel, a retry and an answer (on
the in-memory run store): one per change, none for a change refused or for one that changes
nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from services.workflow.engine import RunConflict
from shared import audit
from shared.contracts.audit import AUDIT_ACTIONS, AuditRecorded
from shared.contracts.workflow import INPUT_SIGNAL, NEEDS_INPUT, Question, StepError, WorkflowSignal
from shared.topics import AUDIT_RECORDED
from tests.unit.test_workflow_engine import World

TRACER = TracerProvider().get_tracer("test")


def test_an_entry_carries_the_current_trace_id() -> None:
    campaign_id = uuid.uuid4()
    with TRACER.start_as_current_span("request") as span:
        recorded = audit.entry(
            "email.edited", "email", uuid.UUID(int=7), actor="ada", campaign_id=campaign_id,
            detail={"before": {"subject": "Hi"}, "after": {"subject": "Hello"}},
            correlation_id="c-1",
        )  # fmt: skip
    assert recorded.trace_id == format(span.get_span_context().trace_id, "032x")
    assert len(recorded.trace_id) == 32
    assert (recorded.action, recorded.object_type, recorded.actor) == (
        "email.edited",
        "email",
        "ada",
    )
    assert recorded.object_id == str(uuid.UUID(int=7))
    assert (recorded.campaign_id, recorded.run_id, recorded.team) == (campaign_id, None, None)
    assert recorded.correlation_id == "c-1"
    assert recorded.detail["after"] == {"subject": "Hello"}
    assert AuditRecorded.model_validate_json(recorded.model_dump_json()) == recorded


def test_outside_a_span_an_entry_has_no_trace_id_and_fresh_ids() -> None:
    first = audit.entry("key.revoked", "key", "3f0c9a1b2d4e")
    second = audit.entry("key.revoked", "key", "3f0c9a1b2d4e")
    assert first.trace_id is None
    assert first.audit_id != second.audit_id
    assert first.event_id != second.event_id
    assert first.detail == {}


def test_an_entry_refuses_an_unknown_action_or_a_malformed_trace_id() -> None:
    with pytest.raises(ValidationError):
        AuditRecorded.model_validate(
            {"action": "email.deleted", "object_type": "email", "object_id": "x"}
        )
    with pytest.raises(ValidationError):
        AuditRecorded(action="run.retried", object_type="run", object_id="x", trace_id="abc")
    assert "run.input_given" in AUDIT_ACTIONS


def test_an_entry_goes_to_audit_recorded_keyed_by_its_object() -> None:
    recorded = audit.entry("campaign.paused", "campaign", "c-9", actor="rita")
    assert audit.outbox_event(recorded) == (AUDIT_RECORDED.name, "c-9", recorded)


class OutboxConnection:
    """Records the statements `shared.outbox.enqueue` runs (outside `outbox.transaction()`, it
    inserts one row with the caller's connection)."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, statement: str, *args: Any) -> str:
        self.executed.append((statement, args))
        return "INSERT 0 1"


async def test_record_adds_the_entry_to_the_callers_outbox() -> None:
    conn = OutboxConnection()
    with TRACER.start_as_current_span("request"):
        recorded = await audit.record(
            conn,  # type: ignore[arg-type]
            "campaign", "sending.stopped", "sending", "all", actor="admin",
            detail={"campaigns": 2},
        )  # fmt: skip

    [(statement, args)] = conn.executed
    assert statement.startswith("INSERT INTO campaign.outbox")
    event_id, topic, key, payload, headers = args
    assert (event_id, topic, key) == (recorded.event_id, "audit.recorded", "all")
    assert AuditRecorded.model_validate_json(payload) == recorded
    assert recorded.trace_id is not None
    assert recorded.trace_id in json.loads(headers)["traceparent"]  # the same trace travels on


def entries(world: World) -> list[AuditRecorded]:
    return [e for e in world.store.events() if isinstance(e, AuditRecorded)]


async def test_a_cancel_is_recorded_once_with_who_asked() -> None:
    world = World()
    run_id = await world.start()

    await world.engine.cancel(run_id, by="ann")
    await world.engine.cancel(run_id, by="ann")  # again: no change, no entry

    [cancelled] = entries(world)
    assert (cancelled.action, cancelled.object_type, cancelled.actor) == (
        "run.cancelled", "run", "ann",
    )  # fmt: skip
    assert (cancelled.object_id, cancelled.run_id) == (str(run_id), run_id)
    assert cancelled.detail == {"status_before": "running", "state": "find"}


async def test_a_refused_cancel_or_a_retry_that_changes_nothing_records_nothing() -> None:
    world = World()
    run_id = await world.start()
    await world.engine.retry(run_id, by="ann")  # running: left alone
    await world.fail(retryable=False)
    with pytest.raises(RunConflict, match="cannot cancel"):
        await world.engine.cancel(run_id, by="ann")
    assert entries(world) == []


async def test_a_retry_is_recorded_and_a_retry_of_an_active_run_is_not() -> None:
    world = World()
    run_id = await world.start()
    await world.fail(retryable=False)

    await world.engine.retry(run_id, by="ann")
    await world.engine.retry(run_id, by="ann")  # active now: left alone

    [retried] = entries(world)
    assert (retried.action, retried.actor, retried.run_id) == ("run.retried", "ann", run_id)
    assert retried.detail["status_before"] == "failed"


async def waiting_on_a_question(world: World) -> uuid.UUID:
    """A run of `world` that waits for a person's answer; its id."""
    run_id = await world.start()
    question = Question(text="Which audience?", field="audience")
    asking = StepError(code=NEEDS_INPUT, message=question.text, retryable=False, question=question)
    await world.engine.step_completed(world.completion(error=asking))
    return run_id


async def test_an_answer_is_recorded_with_its_text_and_an_answer_to_no_question_is_not() -> None:
    world = World()
    run_id = await waiting_on_a_question(world)

    assert await world.engine.provide_input(run_id, "midwives", "ann") == "advanced"
    with pytest.raises(RunConflict, match="waits on no question"):
        await world.engine.provide_input(run_id, "welders", "ann")

    [answered] = entries(world)
    assert (answered.action, answered.actor, answered.run_id) == ("run.input_given", "ann", run_id)
    assert answered.detail == {"answer": "midwives"}


async def test_an_answer_from_a_conversation_is_recorded_once_with_who_gave_it() -> None:
    world = World()
    run_id = await waiting_on_a_question(world)
    signal = WorkflowSignal(
        run_id=run_id,
        name=INPUT_SIGNAL,
        payload={"answer": "midwives", "by": "bo"},
        sent_by="intent",
    )

    assert await world.engine.signal(signal) == "advanced"
    assert await world.engine.signal(signal) == "stale"  # delivered again: no second entry

    [answered] = entries(world)
    assert (answered.action, answered.actor, answered.detail) == (
        "run.input_given", "bo", {"answer": "midwives"},
    )  # fmt: skip
