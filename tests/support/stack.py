"""The product's processes, started against the test stack (Kafka, PostgreSQL and Redis): a service
or a gateway at a time (`Launcher`), or the set a test module runs (`Stack`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import asyncpg
import httpx

from deploy.servers import free_port
from shared import migrations
from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import ALL_TOPICS
from tests.support.processes import ProcessFailed, ServiceProcess, child_env, python_module

# Tests send at any hour with no daily cap or spacing (a test that paces turns them back on):
# the product's defaults would hold a test's emails for business hours and 100 s apart.
TEST_PACING = {"SEND_WINDOW_DAYS": "always", "SEND_DAILY_CAP": "0", "SEND_SPACING_SECONDS": "0"}
# Tests make many requests with one key a module (and fuzz every route): no rate or stream limits
# (tests/integration/test_rate_limits.py turns them back on).
TEST_LIMITS = {
    "RATE_LIMIT_PER_KEY_PER_MINUTE": "0",
    "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
    "RATE_LIMIT_PUBLIC_PER_MINUTE": "0",
    "MAX_STREAMS_PER_KEY": "0",
}


def stack_env(settings: Settings, **extra: str) -> dict[str, str]:
    """A child process's environment: the test stack's addresses and broker tuning, test pacing
    (`TEST_PACING`) and no limits (`TEST_LIMITS`), plus `extra`."""
    return child_env(
        {
            "ENVIRONMENT": "test",
            **TEST_PACING,
            **TEST_LIMITS,
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
    """A running gateway: its process, and clients of its HTTP API."""

    def __init__(self, process: ServiceProcess, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        """A client that sends `key` (from the `make_key` fixture) as its bearer token; without a
        key, a caller with none (a recipient's browser, an anonymous probe)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


async def prepare_stack(settings: Settings) -> None:
    """Every topic created and every schema migrated, on the stack `settings` name."""
    await ensure_topics(settings, ALL_TOPICS)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Stack:
    """What a test module runs for all of its tests: its services, started in this order, each
    with its settings; a gateway with settings of its own; and the user and scopes of the API key
    that the module's `api` client sends."""

    services: Mapping[str, Mapping[str, str]]
    gateway_env: Mapping[str, str] = field(default_factory=dict)
    user: str = "test-user"
    scopes: tuple[str, ...] = ()


class Launcher:
    """Starts the product's processes against the test stack and stops them all at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started: list[ServiceProcess] = []

    def service(self, name: str, **env: str) -> ServiceProcess:
        """`python -m services.<name>`, once its consumers run."""
        return self.service_within(name, 30, env)

    def service_within(self, name: str, timeout: float, env: Mapping[str, str]) -> ServiceProcess:
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

    def gateway_workers(self, workers: int, **env: str) -> Gateway:
        """The gateway as `serve --workers N` runs it (N processes on one port), once every
        worker serves. A connection stays with one worker: `/healthz` names it (`instance_id`)."""
        port = free_port()
        argv = python_module(
            "services.gateway", "serve", "--port", str(port), "--workers", str(workers)
        )
        proc = ServiceProcess("gateway", argv, stack_env(self.settings, **env)).start()
        self.started.append(proc)
        deadline = time.monotonic() + 30 * workers
        while sum("Application startup complete" in line for line in list(proc.lines)) < workers:
            if time.monotonic() > deadline or (proc.proc is not None and proc.proc.poll()):
                raise ProcessFailed(f"{workers} gateway workers did not start:\n{proc.output()}")
            time.sleep(0.1)
        return Gateway(proc, f"http://127.0.0.1:{port}")

    def stack(self, stack: Stack) -> Gateway:
        """The stack's services, then its gateway."""
        for name, env in stack.services.items():
            self.service(name, **env)
        return self.gateway(**stack.gateway_env)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


StartService = Callable[..., ServiceProcess]
StartGateway = Callable[..., Gateway]
