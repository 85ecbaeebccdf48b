"""Fixtures for the real stack: a Kafka broker, PostgreSQL and Redis, started once per run; the
product's processes against it (`launcher` per test, or a module's `stack` with its `gateway` and
`api` client); API keys, a real SMTP server, and the `tag` that campaign rows carry.

Kafka: Apache Kafka on a free port (Tansu with LOCAL_KAFKA=tansu, or where Java 17+ is missing),
unless KAFKA_BOOTSTRAP_SERVERS points at a cluster.
PostgreSQL: a throwaway database `test_<hex>` on the local server (or DATABASE_URL's server, or an
embedded one), dropped at the end. Redis: the local server, or REDIS_URL, or an embedded one.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.infra import Endpoints, LocalInfra
from deploy.servers import free_port
from shared.db import database_of, with_database
from shared.settings import Settings
from tests.support.api import MakeKey, create_key
from tests.support.campaign_rows import delete_tagged
from tests.support.dovecot import dovecot  # noqa: F401 - the fixture: a real IMAP server
from tests.support.smtp import SmtpTestServer
from tests.support.stack import (
    TEST_LIMITS,
    TEST_PACING,
    Gateway,
    Launcher,
    Stack,
    StartGateway,
    StartService,
    prepare_stack,
)


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    data_dir = tmp_path_factory.mktemp("infra")
    env = dict(os.environ)
    database = f"test_{uuid.uuid4().hex[:12]}"
    if "DATABASE_URL" in env:  # use that server, but a database of our own
        env["DATABASE_URL"] = with_database(env["DATABASE_URL"], database)
    local = LocalInfra(data_dir, env=env, kafka_port=free_port(), database_name=database)
    endpoints = local.start()
    try:
        yield endpoints
    finally:
        local.stop()


@pytest.fixture(scope="session")
def settings(infra: Endpoints) -> Settings:
    test_env = {**TEST_PACING, **TEST_LIMITS}
    return infra.settings(environment="test", **{k.lower(): v for k, v in test_env.items()})


@pytest.fixture(scope="session")
async def prepared(settings: Settings) -> AsyncIterator[Settings]:
    """Topics created and every schema migrated; the test database is dropped afterwards."""
    await prepare_stack(settings)
    yield settings
    admin_url = with_database(settings.database_url, "postgres")
    database = database_of(settings.database_url)
    if database.startswith("test_"):
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def db(prepared: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(prepared.database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def launcher(prepared: Settings) -> Iterator[Launcher]:
    launcher = Launcher(prepared)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def module_launcher(prepared: Settings) -> Iterator[Launcher]:
    """For a module whose tests share one set of running processes."""
    launcher = Launcher(prepared)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def start_service(launcher: Launcher) -> StartService:
    return launcher.service


@pytest.fixture
def start_gateway(launcher: Launcher) -> StartGateway:
    return launcher.gateway


@pytest.fixture(scope="module")
def gateway(module_launcher: Launcher, stack: Stack) -> Gateway:
    """The processes the module's `stack` fixture names, started once for all of its tests, and
    the gateway in front of them."""
    return module_launcher.stack(stack)


@pytest.fixture(scope="module")
async def api(
    gateway: Gateway, stack: Stack, make_key: MakeKey
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the module's gateway, with a key of the `stack`'s user and scopes."""
    async with gateway.client(await make_key(*stack.scopes, user=stack.user)) as client:
        yield client


@pytest.fixture(scope="session")
def make_key(prepared: Settings) -> MakeKey:
    """`await make_key("admin", user="ada")` creates an API key and returns its token."""
    return functools.partial(create_key, prepared)


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    """A real SMTP server of the test's own, recording what arrives."""
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
async def tag(db: asyncpg.Pool) -> AsyncIterator[str]:
    """A marker for this test's campaign rows (in job titles, external refs and email addresses);
    they are deleted when the test ends. The session database is shared by every test."""
    marker = uuid.uuid4().hex[:12]
    yield marker
    await delete_tagged(db, marker)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
