"""Fixtures for the real stack: a Kafka broker, PostgreSQL and Redis, started once per run.

Kafka: Apache Kafka on a free port (Tansu with LOCAL_KAFKA=tansu, or where Java 17+ is missing),
unless KAFKA_BOOTSTRAP_SERVERS points at a cluster.
PostgreSQL: a throwaway database `test_<hex>` on the local server (or DATABASE_URL's server, or an
embedded one), dropped at the end. Redis: the local server, or REDIS_URL, or an embedded one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.infra import Endpoints, LocalInfra
from deploy.servers import free_port
from services.gateway import api_keys
from shared import migrations
from shared.broker import ensure_topics
from shared.db import database_of, with_database
from shared.settings import Settings
from shared.topics import ALL_TOPICS
from tests.support.processes import ServiceProcess, child_env, python_module


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    data_dir = tmp_path_factory.mktemp("infra")
    env = dict(os.environ)
    database = f"test_{uuid.uuid4().hex[:12]}"
    if "DATABASE_URL" in env:  # use that server, but a database of our own
        env["DATABASE_URL"] = with_database(env["DATABASE_URL"], database)
    stack = LocalInfra(data_dir, env=env, kafka_port=free_port(), database_name=database)
    endpoints = stack.start()
    try:
        yield endpoints
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def settings(infra: Endpoints) -> Settings:
    return infra.settings(environment="test")


@pytest.fixture(scope="session")
async def prepared(settings: Settings) -> AsyncIterator[Settings]:
    """Topics created and every schema migrated; the test database is dropped afterwards."""
    await ensure_topics(settings, ALL_TOPICS)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
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


def stack_env(settings: Settings, **extra: str) -> dict[str, str]:
    return child_env(
        {
            "ENVIRONMENT": "test",
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            # the broker's tuning (LocalInfra chose it for Apache Kafka or Tansu)
            "KAFKA_FETCH_MAX_WAIT_MS": str(settings.kafka_fetch_max_wait_ms),
            "KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS": str(settings.kafka_background_fetch_max_wait_ms),
            "KAFKA_TOPIC_PARTITIONS": str(settings.kafka_topic_partitions),
            "KAFKA_ENABLE_IDEMPOTENCE": str(settings.kafka_enable_idempotence).lower(),
            "LOG_LEVEL": "INFO",
            **extra,
        }
    )


class Gateway:
    def __init__(self, process: ServiceProcess, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


class Launcher:
    """Starts the product's processes against the test stack and stops them all at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started: list[ServiceProcess] = []

    def service(self, name: str, **env: str) -> ServiceProcess:
        """`python -m services.<name>`, once its consumers run."""
        return self.service_within(name, 30, env)

    def service_within(self, name: str, timeout: float, env: dict[str, str]) -> ServiceProcess:
        """The same, allowing `timeout` seconds to start (consumer groups with members that
        were killed wait for those members' sessions to time out)."""
        proc = ServiceProcess(
            name, python_module(f"services.{name}"), stack_env(self.settings, **env)
        )
        self.started.append(proc.start())
        proc.wait_for("started successfully", timeout=timeout)
        return proc

    def gateway(self, **env: str) -> Gateway:
        """The gateway on a free port, once it serves HTTP."""
        port = free_port()
        argv = python_module("services.gateway", "serve", "--port", str(port))
        proc = ServiceProcess("gateway", argv, stack_env(self.settings, **env)).start()
        self.started.append(proc)
        proc.wait_for("Application startup complete", timeout=30)
        return Gateway(proc, f"http://127.0.0.1:{port}")

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


StartService = Callable[..., ServiceProcess]
StartGateway = Callable[..., Gateway]


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


MakeKey = Callable[..., Awaitable[str]]


@pytest.fixture
def make_key(db: asyncpg.Pool) -> MakeKey:
    """`await make_key("admin", user="ada")` creates an API key and returns its token."""

    async def make(*scopes: str, user: str = "test-user") -> str:
        async with db.acquire() as conn:
            key = await api_keys.create_key(conn, user, frozenset(scopes))
        return key.token

    return make


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
