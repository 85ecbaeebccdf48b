"""Fixtures for integration tests of the workflow engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.action_owner import ActionOwner
from shared.settings import Settings
from tests.support.workflows import EFFECTS_DDL, make_worker

ENGINE_ENV = {
    "WORKFLOW_DEFINITION_MODULES": "tests.support.workflows",
    "WORKFLOW_TIMER_POLL_SECONDS": "0.2",
}


@pytest.fixture(scope="session")
async def testkit_owner(prepared: Settings) -> AsyncIterator[ActionOwner]:
    """The owner of the `testkit.*` actions, in this process: it outlives any service a test
    kills, and records each action's effect in `testkit.effects`."""
    owner = ActionOwner(prepared, make_worker())
    await owner.start()
    async with owner.pool().acquire() as conn:
        await conn.execute(EFFECTS_DDL)
    yield owner
    await owner.stop()
