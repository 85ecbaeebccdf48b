"""The workflow engine under load, against issue 5's targets.

1,000 runs of `bench.three_steps` (bench.workflows: three steps whose action does nothing) are
started through the engine (the same transaction and outbox the API's start uses), 32 at a time:
a new run starts when one finishes, as 32 clients would (all 1,000 at once would measure only how
long the last step waits in the queue). Each step goes: the engine's transaction (step row, run
row, outbox), published when it commits -> Kafka (workflow.step.requested.bench) -> the action
owner in this process (its result, its outbox, published when it commits) -> Kafka
(workflow.step.completed) -> the workflow service, which advances the run and requests the next
step. Everything runs on this machine's two cores: broker, PostgreSQL, the
workflow service and the owner.

A second pass runs 100 runs one at a time: the latency of a step with nothing else going on (with
32 runs in flight, each waiting on one step, 500 transitions/s means 64 ms per step by Little's
law, so the two targets cannot both hold in one pass unless it went 1,600/s).

Reported for each pass: runs per second and step transitions per second (first start to last
finish), and step latency (a step's request to its completion, from the step history:
`requested_at` is the requesting transaction's time, `completed_at` the completing one's), p50 and
p99. Results: bench/results/workflow.json.

Targets (issue 5, this 2-core machine): at least 500 step transitions per second, p50 step
latency under 20 ms.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from bench.cases import write_document
from bench.stack import BenchStack
from bench.workflows import make_worker
from services.workflow.catalogue import load_definitions
from services.workflow.engine import Engine, StartRequest
from shared.actions import ACTIONS
from tests.support.action_owner import ActionOwner

log = logging.getLogger("bench.workflow")
RESULTS = Path(__file__).resolve().parent / "results" / "workflow.json"
RUNS = 1_000
IN_FLIGHT = 32  # runs at a time, like 32 clients: a new run starts when one finishes
QUIET_RUNS = 100  # then one at a time: the latency of a step with nothing else going on
STEPS = 3
ENV = {"WORKFLOW_DEFINITION_MODULES": "bench.workflows"}
TIMEOUT = 300.0


class BenchmarkError(RuntimeError):
    """The runs did not all finish in time."""


def measure(stack: BenchStack) -> dict[str, Any]:
    """Two passes through one stack: RUNS runs IN_FLIGHT at a time (throughput, and latency under
    that load), then QUIET_RUNS runs one at a time (a step's latency with nothing else going)."""
    stack.fresh_broker()
    stack.use_services(("workflow",), ENV)
    stack.start_gateway(1)  # it waits until the workflow service answers its ping
    # uvloop, as the services use: this process is the actions' owner too
    return uvloop.run(_measure(stack))


async def _measure(stack: BenchStack) -> dict[str, Any]:
    endpoints = stack.endpoints
    settings = endpoints.settings(workflow_definition_modules=ENV["WORKFLOW_DEFINITION_MODULES"])
    owner = ActionOwner(settings, make_worker())
    await owner.start()
    pool = await asyncpg.create_pool(settings.database_url, min_size=4, max_size=8)
    assert pool is not None
    try:
        engine = Engine(pool, load_definitions(settings), ACTIONS)
        return {
            "loaded": await _pass(pool, engine, RUNS, IN_FLIGHT),
            "quiet": await _pass(pool, engine, QUIET_RUNS, 1),
        }
    finally:
        await pool.close()
        await owner.stop()


async def _pass(pool: asyncpg.Pool, engine: Engine, runs: int, in_flight: int) -> dict[str, Any]:
    log.info("running %d runs, %d at a time", runs, in_flight)
    run_ids: list[uuid.UUID] = []
    started = time.perf_counter()
    while (finished := await _finished(pool, run_ids)) < runs:
        if time.perf_counter() - started > TIMEOUT:
            raise BenchmarkError(f"only {finished} of {runs} runs finished")
        room = min(in_flight - (len(run_ids) - finished), runs - len(run_ids))
        if room > 0:
            run_ids += [
                outcome.run_id
                for outcome in await asyncio.gather(
                    *(engine.start(StartRequest("bench.three_steps", {})) for _ in range(room))
                )
            ]
        else:
            await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    stats = await pool.fetchrow(_STEP_STATS, run_ids)
    assert stats is not None
    timeline = await pool.fetchrow(_STEP_TIMELINE, run_ids)
    assert timeline is not None
    return {
        "runs": runs,
        "steps_per_run": STEPS,
        "succeeded": stats["succeeded_runs"],
        "in_flight": in_flight,
        "seconds": round(elapsed, 3),
        "runs_per_second": round(runs / elapsed, 1),
        "step_transitions_per_second": round(runs * STEPS / elapsed, 1),
        "step_latency_ms": {
            "p50": round(stats["p50"], 2),
            "p99": round(stats["p99"], 2),
            "max": round(stats["max"], 2),
        },
        "retried_steps": stats["retried"],
        # p50s of the two halves of a step, split at the owner's transaction start
        "step_timeline_p50_ms": {
            "request_to_owner": round(timeline["to_owner"], 2),
            "owner_to_completion": round(timeline["back"], 2),
        },
    }


async def _finished(pool: asyncpg.Pool, run_ids: list[uuid.UUID]) -> int:
    done: int = await pool.fetchval(
        "SELECT count(*) FROM workflow.runs WHERE run_id = ANY($1::uuid[])"
        " AND finished_at IS NOT NULL",
        run_ids,
    )
    return done


_STEP_STATS = """
WITH latency AS (
    SELECT (extract(epoch FROM s.completed_at - s.requested_at) * 1000)::float8 AS ms, s.attempt
    FROM workflow.steps s
    WHERE s.run_id = ANY($1::uuid[]) AND s.status = 'succeeded'
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99,
       max(ms) AS max,
       count(*) FILTER (WHERE attempt > 1) AS retried,
       (SELECT count(*) FROM workflow.runs
        WHERE run_id = ANY($1::uuid[]) AND status = 'succeeded') AS succeeded_runs
FROM latency
"""


# A step in two halves, from three clocks of one PostgreSQL: the engine's transaction that requests
# the step (steps.requested_at, its start), the owner's transaction that performs it
# (action_results.completed_at, its start), and the engine's that applies the completion
# (steps.completed_at). The first half is the engine's commit and send, the hop and the owner's
# consumption; the second the owner's work, commit and send, the hop back and the engine's.
_STEP_TIMELINE = """
SELECT percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM r.completed_at - s.requested_at) * 1000) AS to_owner,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM s.completed_at - r.completed_at) * 1000) AS back
FROM workflow.steps s
JOIN bench.action_results r
  ON r.run_id = s.run_id AND r.idempotency_key LIKE s.run_id::text || ':' || s.state || ':%'
WHERE s.run_id = ANY($1::uuid[]) AND s.status = 'succeeded'
"""


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    loaded, quiet = result["loaded"], result["quiet"]
    rate = loaded["step_transitions_per_second"]
    return [
        {
            "target": f">= 500 step transitions/s ({loaded['in_flight']} runs in flight)",
            "measured": f"{rate:.0f}/s",
            "met": rate >= 500,
        },
        *(
            {
                "target": f"p50 step latency < 20 ms ({part['in_flight']} in flight)",
                "measured": f"{part['step_latency_ms']['p50']:.1f} ms",
                "met": part["step_latency_ms"]["p50"] < 20,
            }
            for part in (quiet, loaded)
        ),
        # issue 15's, on Apache Kafka
        {
            "target": f">= 600 step transitions/s ({loaded['in_flight']} runs in flight)",
            "measured": f"{rate:.0f}/s",
            "met": rate >= 600,
        },
        {
            "target": f"p50 step latency < 8 ms ({quiet['in_flight']} in flight)",
            "measured": f"{quiet['step_latency_ms']['p50']:.1f} ms",
            "met": quiet["step_latency_ms"]["p50"] < 8,
        },
    ]


def report(result: dict[str, Any]) -> None:
    for part in (result["loaded"], result["quiet"]):
        print(
            f"\nworkflow engine: {part['runs']} runs x {part['steps_per_run']} no-op steps, "
            f"{part['in_flight']} at a time, in {part['seconds']:.1f} s: "
            f"{part['runs_per_second']:.0f} runs/s, {part['step_transitions_per_second']:.0f} "
            f"step transitions/s; step latency p50 {part['step_latency_ms']['p50']:.1f} ms, "
            f"p99 {part['step_latency_ms']['p99']:.1f} ms; {part['succeeded']} succeeded, "
            f"{part['retried_steps']} steps retried"
        )
        halves = part["step_timeline_p50_ms"]
        print(
            f"  a step's halves at p50: request to the owner's transaction "
            f"{halves['request_to_owner']:.1f} ms, from there to the completion applied "
            f"{halves['owner_to_completion']:.1f} ms"
        )


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    document = {"workflow": result, "targets": verdicts(result)}
    seconds = int(result["loaded"]["seconds"] + result["quiet"]["seconds"])
    return write_document(RESULTS, "workflow", seconds, wrk_version, document)
