"""Killing the workflow service mid-flight loses no run and repeats no step's effect."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services.workflow.catalogue import load_definitions
from services.workflow.engine import Engine, StartRequest
from shared.actions import ACTIONS
from shared.settings import Settings
from tests.support.action_owner import ActionOwner
from tests.support.stack import Launcher
from tests.support.workflows import ENGINE_ENV

pytestmark = [pytest.mark.integration, pytest.mark.chaos]  # make chaos
RUNS = 100


async def count(db: asyncpg.Pool, tag: str, status: str) -> int:
    total: int = await db.fetchval(
        "SELECT count(*) FROM workflow.runs WHERE params->>'tag' = $1 AND status = $2", tag, status
    )
    return total


@pytest.mark.timeout(300)  # a kill and restart waits out consumer sessions
async def test_sigkill_mid_flight_loses_no_run_and_repeats_no_effect(
    launcher: Launcher, testkit_owner: ActionOwner, db: asyncpg.Pool, prepared: Settings
) -> None:
    service = launcher.service("workflow", **ENGINE_ENV)
    tag = f"crash-{uuid.uuid4().hex[:8]}"
    # Start the runs through the engine itself (the same transaction and outbox the service
    # uses), so all 100 are in flight at once; the service's relay publishes their first steps.
    settings = Settings(
        **{**prepared.model_dump(), "workflow_definition_modules": "tests.support.workflows"}
    )
    engine = Engine(db, load_definitions(settings), ACTIONS)
    params = {"tag": tag, "delay_seconds": 0.05}
    run_ids = [
        (await engine.start(StartRequest("testkit.three_steps", params))).run_id
        for _ in range(RUNS)
    ]

    deadline = asyncio.get_running_loop().time() + 30
    while await count(db, tag, "succeeded") < 10:
        assert asyncio.get_running_loop().time() < deadline, "runs do not progress"
        await asyncio.sleep(0.02)
    service.kill()  # SIGKILL: no shutdown hook runs
    unfinished = RUNS - await count(db, tag, "succeeded")
    assert unfinished > 0, "every run finished before the kill: the test proves nothing"

    # The killed members stay in their consumer groups until their sessions time out (10 s), so
    # the new process may wait that long to get its partitions.
    launcher.service_within("workflow", 90, ENGINE_ENV)
    deadline = asyncio.get_running_loop().time() + 90
    while await count(db, tag, "succeeded") < RUNS:
        assert asyncio.get_running_loop().time() < deadline, (
            f"only {await count(db, tag, 'succeeded')} of {RUNS} runs succeeded after the restart"
        )
        await asyncio.sleep(0.1)

    effects = await db.fetch(
        """
        SELECT run_id, state, visit, count(*) AS times FROM testkit.effects
        WHERE run_id = ANY($1::uuid[]) GROUP BY run_id, state, visit
        """,
        run_ids,
    )
    assert len(effects) == RUNS * 3  # every step of every run happened
    repeated = [dict(r) for r in effects if r["times"] != 1]
    assert repeated == []  # and none twice
    steps = await db.fetchval(
        "SELECT count(*) FROM workflow.steps"
        " WHERE run_id = ANY($1::uuid[]) AND status = 'succeeded'",
        run_ids,
    )
    assert steps == RUNS * 3
