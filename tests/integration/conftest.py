"""Fixtures for integration tests: the owner of the workflow engine's test actions, the fake
language model server, and a producer of `email.approved` events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.campaign import EmailApproved
from shared.settings import Settings
from shared.topics import EMAIL_APPROVED
from tests.support.action_owner import ActionOwner, started_testkit_owner
from tests.support.fake_llm import FakeLLM


@pytest.fixture(scope="session")
async def testkit_owner(prepared: Settings) -> AsyncIterator[ActionOwner]:
    """The owner of the `testkit.*` actions, in this process: it outlives any service a test
    kills, and records each action's effect in `testkit.effects`."""
    async with started_testkit_owner(prepared) as owner:
        yield owner


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    """An OpenAI-compatible server that the module's tests script, shared by them: a test that
    scripts it resets it first."""
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
async def publish(prepared: Settings) -> AsyncIterator[Callable[[EmailApproved], Awaitable[None]]]:
    """Publish an `email.approved` event, as the review does when it approves an email."""
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_servers)
    await producer.start()

    async def send(event: EmailApproved) -> None:
        await producer.send_and_wait(
            EMAIL_APPROVED.name,
            value=event.model_dump_json().encode(),
            key=str(event.campaign_id).encode(),
        )

    yield send
    await producer.stop()
