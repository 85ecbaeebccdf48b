"""The chaos suite's own stack: it restarts the broker, PostgreSQL and Redis, so it cannot share
the session's (tests/conftest.py `infra`). A private `LocalInfra` (Apache Kafka, embedded
PostgreSQL and Valkey, each on a port of its own), migrated, with the topics; an SMTP server; the
owner of the test actions in this process; and the `ops` thread that starts and restarts
things (tests/support/chaos.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from deploy.infra import InfraStartError, LocalInfra
from deploy.servers import free_port
from shared.settings import Settings
from tests.support.action_owner import ActionOwner, started_testkit_owner
from tests.support.smtp import SmtpTestServer
from tests.support.stack import TEST_LIMITS, TEST_PACING, prepare_stack
from tests.support.workflows import ENGINE_ENV

# A killed consumer keeps its partitions until its session times out: shorter than the default
# (10 s) so that eight faults fit in a few minutes, long enough for a loaded 2-core machine.
SESSION_TIMEOUT_MS = "6000"  # the broker's group.min.session.timeout.ms


@pytest.fixture
def ops() -> Iterator[ThreadPoolExecutor]:
    """The one thread that spawns servers and processes (they die with the thread that spawned
    them, so it lives as long as they do)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaos-ops")
    yield pool
    pool.shutdown()


@pytest.fixture
def chaos_infra(
    ops: ThreadPoolExecutor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalInfra]:
    own = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in own} | {"LOCAL_KAFKA": "apache"}
    local = LocalInfra(
        Path(tmp_path_factory.mktemp("chaos-infra")),
        env=env,
        kafka_port=free_port(),
        database_name="chaos",
        # ports nobody listens on: start servers of our own, never adopt a shared one
        local_postgres_port=free_port(),
        local_redis_port=free_port(),
    )
    try:
        ops.submit(local.start).result()
    except InfraStartError as exc:
        pytest.skip(f"the chaos suite restarts Apache Kafka, which cannot run here: {exc}")
    yield local
    ops.submit(local.stop).result()


@pytest.fixture
async def chaos_settings(chaos_infra: LocalInfra) -> Settings:
    """Settings of the private stack, topics created and every schema migrated."""
    fields = {k.lower(): v for k, v in {**TEST_PACING, **TEST_LIMITS}.items()}
    settings = chaos_infra.endpoints.settings(
        environment="test",
        kafka_session_timeout_ms=int(SESSION_TIMEOUT_MS),
        workflow_definition_modules=ENGINE_ENV["WORKFLOW_DEFINITION_MODULES"],
        **fields,
    )
    await prepare_stack(settings)
    return settings


@pytest.fixture
async def chaos_db(chaos_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(chaos_settings.database_url, min_size=1, max_size=6)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def chaos_owner(chaos_settings: Settings) -> AsyncIterator[ActionOwner]:
    """The owner of the `testkit.*` actions, in this process: it outlives the services killed."""
    async with started_testkit_owner(chaos_settings) as owner:
        yield owner


@pytest.fixture
def chaos_smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@dataclass(frozen=True)
class Rig:
    """The private stack the chaos suite breaks, and what it reads the outcome from."""

    settings: Settings
    infra: LocalInfra
    ops: ThreadPoolExecutor
    db: asyncpg.Pool
    smtp: SmtpTestServer
    logs: Path  # each process's output is saved here at the end


@pytest.fixture
def rig(
    chaos_settings: Settings,
    chaos_infra: LocalInfra,
    ops: ThreadPoolExecutor,
    chaos_db: asyncpg.Pool,
    chaos_smtp: SmtpTestServer,
    chaos_owner: ActionOwner,
    tmp_path: Path,
) -> Rig:
    return Rig(chaos_settings, chaos_infra, ops, chaos_db, chaos_smtp, tmp_path / "logs")
