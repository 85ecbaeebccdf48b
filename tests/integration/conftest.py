"""Fixtures for integration tests: the owner of the workflow engine's test actions, and the fake
language model server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.settings import Settings
from tests.support.action_owner import ActionOwner
from tests.support.fake_llm import FakeLLM
from tests.support.workflows import EFFECTS_DDL, make_worker


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


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    """An OpenAI-compatible server that the module's tests script, shared by them: a test that
    scripts it resets it first."""
    with FakeLLM() as fake:
        yield fake
