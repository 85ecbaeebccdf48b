"""A stack of its own for a benchmark: a broker of its own (Apache Kafka, or Tansu with
LOCAL_KAFKA=tansu or without Java), a database `bench_<hex>`, the
services a benchmark needs (by default the intent and workflow services) and the gateway, none
shared with what a developer runs (`make run`, the tests). The workflow service consumes
`intent.detected` as in production, so a benchmark of `POST /api/ai-assistant/intent` pays for
what that endpoint sets off.

A benchmark can change the services that run (`use_services`, the inference benchmark runs the
inference service alone) and add to their environment and the gateway's (the model settings,
GATEWAY_SERVES_CACHE_HITS).

Redis is the one shared part (the usual local server, or REDIS_URL): the gateway pings it, and the
inference benchmark caches answers in it (keys of its own, deleted afterwards).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.infra import Endpoints, LocalInfra
from deploy.run_local import SERVICES as ALL_SERVICES  # every service, as `make run` runs them
from deploy.servers import free_port
from deploy.supervisor import ChildSpec, Supervisor, pid_alive
from services.gateway import api_keys
from shared import migrations
from shared.broker import client_options, ensure_topics, partition_count
from shared.db import with_database
from shared.settings import Settings
from shared.topics import ALL_TOPICS, INTENT_DETECTED

log = logging.getLogger("bench.stack")
READY_TIMEOUT = 60.0
SERVICES = ("intent", "workflow")  # the default: started once, in this order, pinged before a run
ENGINE_GROUP = "workflow.engine"  # the workflow service's consumer group (services.workflow.app)
_BACKLOG_SQL = """
SELECT
    (SELECT count(*) FROM intent.intent_log) AS logged,
    (SELECT count(*) FROM intent.outbox WHERE published_at IS NULL) AS unpublished,
    (SELECT count(*) FROM intent.intent_log
        WHERE mode = 'workflow' AND NOT needs_clarification) AS startable,
    (SELECT count(*) FROM workflow.runs WHERE intent_id IS NOT NULL) AS runs
"""


class StackError(RuntimeError):
    """A benchmark process did not come up; the message names its log."""


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class BenchStack:
    """start() brings everything up; stop() takes it all down and drops the database."""

    def __init__(
        self,
        work_dir: Path,
        services: tuple[str, ...] = SERVICES,
    ) -> None:
        self.work_dir = work_dir
        self.services = services
        self.log_dir = work_dir / "logs"
        self.database = f"bench_{uuid.uuid4().hex[:12]}"
        env = dict(os.environ)
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # always a broker of our own
        if "DATABASE_URL" in env:  # that server, but a database of our own
            env["DATABASE_URL"] = with_database(env["DATABASE_URL"], self.database)
        self._infra = LocalInfra(
            work_dir / "infra", env=env, kafka_port=free_port(), database_name=self.database
        )
        self._endpoints: Endpoints | None = None
        self._services: dict[str, Supervisor] = {}
        self._env: dict[str, dict[str, str]] = {}  # what each running service was given
        self._gateway: Supervisor | None = None
        self._pids: set[int] = set()
        self.api_key = ""
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Broker, database, topics, migrations, an admin key, then the services."""
        self._endpoints = self._infra.start()
        if self._infra.broker_pid is not None:
            self._pids.add(self._infra.broker_pid)
        self.api_key = asyncio.run(self._prepare())
        self.use_services(self.services)

    def use_services(self, names: tuple[str, ...], env: dict[str, str] | None = None) -> None:
        """Run exactly these services, each with `env` added to its environment (stop the others
        and those running with another environment, start the missing ones in order), so an idle
        service does not load the broker during another benchmark. Restart the gateway
        afterwards: it waits for the services it pings."""
        wanted = dict(env or {})
        for name in [n for n in self._services if n not in names or self._env[n] != wanted]:
            self._services.pop(name).stop()
        for name in names:
            if name not in self._services:
                argv = [sys.executable, "-m", f"services.{name}"]
                self._services[name] = self._supervise(ChildSpec(name, argv, {}), wanted)
                self._env[name] = wanted
        self.services = names

    @property
    def broker(self) -> str:
        """Which broker runs the benchmark: "apache" or "tansu"."""
        return self.endpoints.kafka_broker

    def fresh_broker(self) -> None:
        """On Tansu, stop the gateway and the services and replace the broker with a new, empty
        one; then use_services() and start_gateway() bring them back. A measurement on a Tansu
        that earlier ones filled measures them too: a fetch from its memory storage gets slower
        the more messages its partition holds (docs/benchmarks.md, "The broker slows as its
        topics fill"). Apache Kafka does not, so there this does nothing."""
        if self._infra.tansu_pid is None:
            return
        self._stop_gateway()
        for name in reversed(list(self._services)):
            self._services.pop(name).stop()
        self._endpoints = self._infra.restart_kafka()
        if self._infra.broker_pid is not None:
            self._pids.add(self._infra.broker_pid)
        asyncio.run(ensure_topics(self._settings(), ALL_TOPICS))

    def start_gateway(
        self, workers: int, env: dict[str, str] | None = None, label: str = ""
    ) -> str:
        """(Re)start the gateway with `workers` uvicorn workers and `env` added to its
        environment; returns its URL once ready. `label` tells its log apart."""
        self._stop_gateway()
        port = free_port()
        name = f"gateway-{workers}w" + (f"-{label}" if label else "")
        argv = [sys.executable, "-m", "services.gateway", "serve", "--port", str(port)]
        argv += ["--workers", str(workers)]
        self._gateway = self._supervise(ChildSpec(name, argv, {}), env)
        self.url = f"http://127.0.0.1:{port}"
        self._wait(self._gateway, name, "/readyz", auth=False)
        # The gateway is ready before the services have joined their consumer groups (the intent
        # service trains its classifier first).
        for service in self.services:
            self._wait(self._gateway, name, f"/api/services/{service}/ping", auth=True)
        return self.url

    def process_roots(self) -> dict[str, list[int]]:
        """The pids whose process trees make up each part of the stack (for CPU accounting)."""
        roots = {name: list(sup.pids.values()) for name, sup in self._services.items()}
        if self._gateway is not None:
            roots["gateway"] = list(self._gateway.pids.values())
        if self._infra.broker_pid is not None:
            roots["kafka" if self._infra.tansu_pid is None else "tansu"] = [self._infra.broker_pid]
        return roots

    def settle_runs(self, timeout: float = 180.0) -> int:
        """Run every service until no workflow run is at work (each campaign run the intent
        benchmark started stops at its first step: this database has no jobs, so the run asks
        which job and waits, idle, for an answer); return how many were at work. Raise
        StackError if some still are after `timeout`."""
        self.use_services(ALL_SERVICES)
        active = asyncio.run(self._active_runs())
        log.info("letting %d active runs end", active)
        deadline = time.monotonic() + timeout
        while (left := asyncio.run(self._active_runs())) > 0:
            if time.monotonic() > deadline:
                raise StackError(f"{left} workflow runs still active after {timeout:.0f} s")
            time.sleep(1.0)
        return active

    async def _active_runs(self) -> int:
        conn = await asyncpg.connect(self.endpoints.database_url)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM workflow.runs WHERE status IN ('pending', 'running')"
            )
        finally:
            await conn.close()
        return count

    def workflow_backlog(self) -> dict[str, int]:
        """Counts that tell whether the workflow service has consumed every `intent.detected`:
        `logged` intents, `unpublished` outbox rows, `lag` (events on the topic its consumer group
        has not committed yet),
        `startable` intents (workflow mode, nothing to clarify) and the `runs` started."""
        return asyncio.run(self._backlog())

    def stop(self) -> None:
        """Stop the services, drop the database, stop the broker; safe to call twice."""
        try:
            self._stop_gateway()
            for name in reversed(list(self._services)):
                self._services.pop(name).stop()
            if self._endpoints is not None:
                asyncio.run(self._drop_database(self._endpoints.database_url))
        finally:
            self._infra.stop()
            self._endpoints = None
        left = sorted(pid for pid in self._pids if pid_alive(pid))
        if left:
            log.warning("processes still running after stop: %s", left)

    def __enter__(self) -> BenchStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("the stack is not started")
        return self._endpoints

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(
            self.endpoints.service_env(),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            # one key drives thousands of requests a second: no rate or stream limits
            RATE_LIMIT_PER_KEY_PER_MINUTE="0",
            RATE_LIMIT_ANONYMOUS_PER_MINUTE="0",
            RATE_LIMIT_PUBLIC_PER_MINUTE="0",
            MAX_STREAMS_PER_KEY="0",
        )
        return env

    def _supervise(self, spec: ChildSpec, env: dict[str, str] | None = None) -> Supervisor:
        spec.env = {**self._child_env(), **(env or {})}
        supervisor = Supervisor([spec], log_dir=self.log_dir)
        supervisor.start()
        self._pids.update(supervisor.pids.values())
        return supervisor

    def _stop_gateway(self) -> None:
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None

    def _wait(self, supervisor: Supervisor, name: str, path: str, *, auth: bool) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if auth else {}
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            for proc_name, child in ((name, supervisor), *self._services.items()):
                if not all(pid_alive(p) for p in child.pids.values()):
                    log_path = self.log_dir / f"{proc_name}.log"
                    raise StackError(f"{proc_name} exited; {log_path}:\n{tail(log_path)}")
            try:
                response = httpx.get(f"{self.url}{path}", headers=headers, timeout=10.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
        log_path = self.log_dir / f"{name}.log"
        raise StackError(
            f"GET {path} did not answer 200 within {READY_TIMEOUT:.0f} s ({last}); "
            f"{log_path}:\n{tail(log_path)}"
        )

    def _settings(self) -> Settings:
        return self.endpoints.settings()

    async def _prepare(self) -> str:
        settings = self._settings()
        await ensure_topics(settings, ALL_TOPICS)
        conn = await asyncpg.connect(settings.database_url)
        try:
            await migrations.migrate(conn)
            key = await api_keys.create_key(conn, "bench", frozenset({"admin"}))
        finally:
            await conn.close()
        return key.token

    async def _backlog(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.endpoints.database_url)
        try:
            row = await conn.fetchrow(_BACKLOG_SQL)
        finally:
            await conn.close()
        assert row is not None
        return {**{key: int(value) for key, value in row.items()}, "lag": await self._lag()}

    async def _lag(self) -> int:
        """`intent.detected` events the engine's group has not committed. The offsets are read by
        a consumer that names the group but takes partitions by hand (it never joins the group,
        and commits nothing): Tansu does not answer the admin client's offset request."""
        consumer = AIOKafkaConsumer(
            **client_options(self._settings()),
            group_id=ENGINE_GROUP,
            enable_auto_commit=False,
        )
        partitions = [TopicPartition(INTENT_DETECTED.name, p) for p in range(self._partitions())]
        await consumer.start()
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            done = {tp: await consumer.committed(tp) or 0 for tp in partitions}
        finally:
            await consumer.stop()
        return sum(end - done[tp] for tp, end in ends.items())

    def _partitions(self) -> int:
        return partition_count(self._settings(), INTENT_DETECTED)

    async def _drop_database(self, url: str) -> None:
        if not self.database.startswith("bench_"):
            raise RuntimeError(f"refusing to drop {self.database!r}")
        conn = await asyncpg.connect(with_database(url, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()
        log.info("dropped database %s", self.database)
