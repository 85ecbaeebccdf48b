"""The workflow engine through the real gateway, broker and PostgreSQL: test definitions
(`tests.support.workflows`) run by the workflow service, their actions by a `testkit` owner in this
process, which counts each action's effects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.intent import IntentDetected, Slots
from shared.contracts.workflow import WorkflowSignal, WorkflowStepCompleted
from shared.settings import Settings
from shared.topics import DEAD_LETTER, INTENT_DETECTED, WORKFLOW_SIGNALS, WORKFLOW_STEP_COMPLETED
from tests.support.action_owner import ActionOwner
from tests.support.api import FINISHED, sse_events, wait_for_status
from tests.support.stack import Stack
from tests.support.workflows import ENGINE_ENV

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(testkit_owner: ActionOwner) -> Stack:
    """The workflow service with the test definitions (their actions' owner running first); the
    API as `wf-tester`."""
    return Stack({"workflow": ENGINE_ENV}, user="wf-tester", scopes=("workflows",))


@pytest.fixture(scope="module")
async def producer(prepared: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_servers)
    await producer.start()
    yield producer
    await producer.stop()


async def start(api: httpx.AsyncClient, workflow_type: str, **params: Any) -> str:
    response = await api.post("/api/workflows", json={"type": workflow_type, "params": params})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def effects(db: asyncpg.Pool, run_id: str) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT state, visit FROM testkit.effects WHERE run_id = $1 ORDER BY id",
        uuid.UUID(run_id),
    )
    return [(r["state"], r["visit"]) for r in rows]


def attempts(run: dict[str, Any], state: str) -> list[tuple[int, int, str]]:
    return [(s["visit"], s["attempt"], s["status"]) for s in run["steps"] if s["state"] == state]


async def test_success_path_runs_each_step_once_in_order(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    run_id = await start(api, "testkit.three_steps")
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "succeeded"
    assert run["state"] == "done"
    assert [(s["state"], s["status"]) for s in run["steps"]] == [
        ("one", "succeeded"),
        ("two", "succeeded"),
        ("three", "succeeded"),
    ]
    assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in run["steps"])
    assert run["outputs"]["three"] == {"attempt": 1, "state": "three"}
    assert await effects(db, run_id) == [("one", 1), ("two", 1), ("three", 1)]


async def test_a_step_that_fails_twice_then_succeeds(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    run_id = await start(api, "testkit.flaky", fail_attempts=2)
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "succeeded"
    assert attempts(run, "flaky") == [(1, 1, "failed"), (1, 2, "failed"), (1, 3, "succeeded")]
    failed = [s for s in run["steps"] if s["status"] == "failed"]
    assert all("fails on purpose" in s["error"] for s in failed)
    assert await effects(db, run_id) == [("prepare", 1), ("flaky", 1)]


async def test_a_step_that_times_out_is_retried_and_its_late_result_counts_once(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # The first attempt takes 2.5 s against a 1.5 s timeout: it is timed out and retried, then
    # finishes after all. The retry gets the stored result instead of doing the effect again.
    run_id = await start(api, "testkit.slow", hang_attempts=1, hang_seconds=2.5)
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "succeeded", json.dumps(run["steps"], indent=1)
    assert attempts(run, "slow") == [(1, 1, "timed_out"), (1, 2, "succeeded")]
    assert await effects(db, run_id) == [("slow", 1)]


async def test_retrying_a_failed_run_resumes_at_its_failed_step(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    run_id = await start(api, "testkit.flaky", fail_visits=1)
    failed = await wait_for_status(api, run_id, FINISHED)
    assert failed["status"] == "failed"
    assert "state 'flaky': testkit.flaky failed after 3 attempts" in failed["error"]

    retried = await api.post(f"/api/workflows/{run_id}/retry")
    assert retried.status_code == 200, retried.text
    again = await api.post(f"/api/workflows/{run_id}/retry")  # idempotent while it runs
    assert again.status_code in (200, 409)
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "succeeded"
    assert run["error"] is None
    assert attempts(run, "flaky")[-1] == (2, 1, "succeeded")
    assert await effects(db, run_id) == [("prepare", 1), ("flaky", 2)]  # prepare not redone
    conflict = await api.post(f"/api/workflows/{run_id}/retry")
    assert conflict.status_code == 409
    assert "only a failed run can be retried" in conflict.json()["detail"]


async def test_a_run_cancelled_during_a_wait(api: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    run_id = await start(api, "testkit.approval")
    waiting = await wait_for_status(api, run_id, {"waiting"})
    assert waiting["waiting_for"] == {"signal": "approved", "deadline_at": None}

    cancelled = await api.post(f"/api/workflows/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"] == "cancelled by wf-tester"
    again = await api.post(f"/api/workflows/{run_id}/cancel")
    assert again.status_code == 200
    assert again.json()["sequence"] == cancelled.json()["sequence"]  # nothing changed
    wait_status = await db.fetchval(
        "SELECT status FROM workflow.waits WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert wait_status == "cancelled"
    assert (await api.post(f"/api/workflows/{run_id}/retry")).status_code == 409


async def test_a_signal_that_arrives_before_the_wait_ends_it(
    api: httpx.AsyncClient, db: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    run_id = await start(api, "testkit.approval", hang_attempts=1, hang_seconds=1.0)
    signal = WorkflowSignal(run_id=uuid.UUID(run_id), name="approved", payload={"by": "ada"})
    await producer.send_and_wait(
        WORKFLOW_SIGNALS.name, signal.model_dump_json().encode(), key=run_id.encode()
    )
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "succeeded"
    row = await db.fetchrow(
        """
        SELECT s.received_at, w.created_at AS waited_at, w.status
        FROM workflow.waits w JOIN workflow.signals s ON s.id = w.signal_id
        WHERE w.run_id = $1
        """,
        uuid.UUID(run_id),
    )
    assert row is not None
    assert row["status"] == "signalled"
    assert row["received_at"] < row["waited_at"]  # it really came first
    assert await effects(db, run_id) == [("prepare", 1), ("finish", 1)]


async def test_a_wait_deadline_expires_the_run(api: httpx.AsyncClient) -> None:
    run_id = await start(api, "testkit.approval", wait_seconds=0.5)
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "expired"
    assert run["state"] == "expired"


async def test_duplicate_and_late_completions_change_nothing(
    api: httpx.AsyncClient, db: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    run_id = await start(api, "testkit.approval")
    waiting = await wait_for_status(api, run_id, {"waiting"})
    prepare = waiting["steps"][0]
    for ok in (True, False):  # a redelivered copy, and a contradicting late one
        copy = WorkflowStepCompleted(
            run_id=uuid.UUID(run_id), step_id=prepare["step_id"], action=prepare["action"],
            ok=ok, output={"attempt": 9, "state": "prepare"},
        )  # fmt: skip
        await producer.send_and_wait(
            WORKFLOW_STEP_COMPLETED.name, copy.model_dump_json().encode(), key=run_id.encode()
        )
    # A signal for another run proves the engine consumed past the copies before we look.
    marker = await start(api, "testkit.approval")
    await wait_for_status(api, marker, {"waiting"})
    await asyncio.sleep(0.5)
    after = await wait_for_status(api, run_id, {"waiting"})
    assert after["sequence"] == waiting["sequence"]
    assert after["steps"] == waiting["steps"]
    assert await effects(db, run_id) == [("prepare", 1)]
    await api.post(f"/api/workflows/{run_id}/cancel")
    await api.post(f"/api/workflows/{marker}/cancel")


async def test_a_poison_completion_is_dead_lettered_and_consumption_goes_on(
    api: httpx.AsyncClient, producer: AIOKafkaProducer, prepared: Settings
) -> None:
    from aiokafka import AIOKafkaConsumer

    marker = uuid.uuid4().hex
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.name, bootstrap_servers=prepared.kafka_servers, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        await consumer.seek_to_end()
        await producer.send_and_wait(
            WORKFLOW_STEP_COMPLETED.name, f'{{"not": "a completion", "m": "{marker}"}}'.encode()
        )
        run_id = await start(api, "testkit.three_steps")
        assert (await wait_for_status(api, run_id, FINISHED))["status"] == "succeeded"
        letter = await asyncio.wait_for(_letter_with(consumer, marker), 10)
        assert letter["source_topic"] == WORKFLOW_STEP_COMPLETED.name
        assert letter["consumer"] == "workflow.engine"
        assert "not a valid WorkflowStepCompleted" in letter["reason"]
    finally:
        await consumer.stop()


async def _letter_with(consumer: Any, marker: str) -> dict[str, Any]:
    async for message in consumer:
        letter: dict[str, Any] = json.loads(message.value)
        if marker in letter["payload"]:
            return letter
    raise AssertionError("the consumer stopped")


async def test_bad_requests_get_clear_errors_and_start_nothing(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    before = await db.fetchval("SELECT count(*) FROM workflow.runs")
    unknown = await api.post("/api/workflows", json={"type": "no_such_flow"})
    assert unknown.status_code == 422
    assert "unknown workflow type 'no_such_flow'" in unknown.json()["detail"]
    assert "testkit.three_steps" in unknown.json()["detail"]  # it says what exists
    for malformed in ("0", "Email_Campaign", "a b"):  # never a name: refused before it is sent
        refused = await api.post("/api/workflows", json={"type": malformed})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "type"
    bad_params = await api.post(
        "/api/workflows", json={"type": "testkit.flaky", "params": {"fail_attempts": -1}}
    )
    assert bad_params.status_code == 422
    assert "fail_attempts" in bad_params.json()["detail"]
    extra = await api.post(
        "/api/workflows", json={"type": "testkit.flaky", "params": {"colour": "red"}}
    )
    assert extra.status_code == 422
    assert "colour" in extra.json()["detail"]
    not_json = await api.post(
        "/api/workflows", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM workflow.runs") == before

    missing = uuid.uuid4()
    for response in (
        await api.get(f"/api/workflows/{missing}"),
        await api.post(f"/api/workflows/{missing}/cancel"),
        await api.post(f"/api/workflows/{missing}/retry"),
    ):
        assert response.status_code == 404
        assert f"no workflow run {missing}" in response.json()["detail"]
    assert (await api.get("/api/workflows/not-a-uuid")).status_code == 422

    finished = await start(api, "testkit.three_steps")
    await wait_for_status(api, finished, FINISHED)
    refused = await api.post(f"/api/workflows/{finished}/cancel")
    assert refused.status_code == 409
    assert "already finished (succeeded)" in refused.json()["detail"]


async def test_an_idempotency_key_returns_the_same_run(api: httpx.AsyncClient) -> None:
    key = f"ats-{uuid.uuid4()}"
    body = {"type": "testkit.three_steps", "params": {"tag": "a"}, "idempotency_key": key}
    first = await api.post("/api/workflows", json=body)
    second = await api.post("/api/workflows", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["run_id"] == second.json()["run_id"]
    assert second.json()["created"] is False
    header = await api.post(
        "/api/workflows", json={k: v for k, v in body.items() if k != "idempotency_key"},
        headers={"Idempotency-Key": key},
    )  # fmt: skip
    assert header.json()["run_id"] == first.json()["run_id"]
    reused = await api.post("/api/workflows", json={**body, "params": {"tag": "b"}})
    assert reused.status_code == 409
    assert "different request" in reused.json()["detail"]


async def test_listing_filters_and_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    started = [await start(api, "testkit.flaky", tag="page") for _ in range(3)]
    for run_id in started:
        await wait_for_status(api, run_id, FINISHED)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"type": "testkit.flaky", "status": "succeeded", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/workflows", params=params)).json()
        assert all(item["workflow_type"] == "testkit.flaky" for item in page["items"])
        assert all(item["status"] == "succeeded" for item in page["items"])
        seen += [item["run_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert seen[:3] == list(reversed(started))  # newest first
    bad = await api.get("/api/workflows", params={"cursor": "garbage"})
    assert bad.status_code == 422
    assert (await api.get("/api/workflows", params={"status": "sleeping"})).status_code == 422


async def test_a_stream_opened_before_its_run_starts_waits_for_it(
    api: httpx.AsyncClient, producer: AIOKafkaProducer
) -> None:
    """A client that follows the `workflow_id` of an intent at once asks before the run exists
    (the run starts from the intent's event a moment later): the stream waits for it instead of
    answering 404, which browsers never retry. An id that never starts is still a 404."""
    intent = IntentDetected(
        mode="workflow", intent="email_campaign", confidence=0.9, source="stream-test",
        slots=Slots(skills=["python"], location="Berlin", job_title="Stream Test Engineer"),
    )  # fmt: skip
    run_id = intent.workflow_id

    async def first_event() -> tuple[int, str]:
        async with api.stream("GET", f"/api/workflows/{run_id}/events") as response:
            if response.status_code != 200:
                return response.status_code, ""
            async for name, _ in sse_events(response):
                return response.status_code, name
        return response.status_code, ""

    following = asyncio.create_task(first_event())
    await asyncio.sleep(1.0)  # the stream is waiting: the run does not exist yet
    assert not following.done()
    await producer.send_and_wait(
        INTENT_DETECTED.name, intent.model_dump_json().encode(), key=str(intent.intent_id).encode()
    )
    assert await asyncio.wait_for(following, 10) == (200, "snapshot")
    never = await api.get(f"/api/workflows/{uuid.uuid4()}/events")
    assert never.status_code == 404


async def test_the_event_stream_shows_progress_until_the_run_finishes(
    api: httpx.AsyncClient, producer: AIOKafkaProducer
) -> None:
    run_id = await start(api, "testkit.approval")
    events: list[tuple[str, dict[str, Any]]] = []
    listening = asyncio.Event()

    async def follow() -> None:
        async with api.stream("GET", f"/api/workflows/{run_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in sse_events(response):
                events.append(event)
                listening.set()

    follower = asyncio.create_task(follow())
    await wait_for_status(api, run_id, {"waiting"})
    await asyncio.wait_for(listening.wait(), 10)  # the snapshot is out: the stream listens
    signal = WorkflowSignal(run_id=uuid.UUID(run_id), name="approved")
    await producer.send_and_wait(
        WORKFLOW_SIGNALS.name, signal.model_dump_json().encode(), key=run_id.encode()
    )
    await asyncio.wait_for(follower, 20)  # the stream ends by itself when the run finishes
    assert events[0][0] == "snapshot"
    assert events[0][1]["run_id"] == run_id
    changes = [data for name, data in events[1:] if name == "change"]
    assert changes, events
    sequences = [c["sequence"] for c in changes]
    assert sequences == sorted(set(sequences))
    assert sequences[0] > events[0][1]["sequence"]
    assert changes[-1]["status"] == "succeeded"
    assert {"step_requested", "succeeded"} <= {c["change"] for c in changes}
