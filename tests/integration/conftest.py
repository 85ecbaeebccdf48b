"""Fixtures for integration tests of the workflow engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
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


@pytest.fixture
async def tag(db: asyncpg.Pool) -> AsyncIterator[str]:
    """A marker for this test's campaign rows (in job titles, external refs and email addresses);
    they are deleted when the test ends. The session database is shared by every test."""
    marker = uuid.uuid4().hex[:12]
    yield marker
    like = f"%{marker}%"
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM campaign.campaigns WHERE job_id IN"
            " (SELECT job_id FROM campaign.jobs WHERE title LIKE $1 OR external_ref LIKE $1)",
            like,
        )  # their recipients, emails and delivery events go with them (ON DELETE CASCADE)
        await conn.execute("DELETE FROM campaign.suppressions WHERE email LIKE $1", like)
        await conn.execute(
            "DELETE FROM campaign.candidates WHERE email LIKE $1 OR external_ref LIKE $1", like
        )
        await conn.execute(
            "DELETE FROM campaign.jobs WHERE title LIKE $1 OR external_ref LIKE $1", like
        )
