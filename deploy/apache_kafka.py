"""Apache Kafka for local runs, tests and benchmarks, without Docker: its jars resolved from Maven
Central once (deploy/kafka/pom.xml), a KRaft single-node store (combined broker and controller)
formatted under a data folder, and the broker started with settings for development.

`python -m deploy.apache_kafka resolve` fetches the jars ahead of time (make does it for you).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.servers import InfraStartError, free_port, require_free_port, spawn_server
from deploy.supervisor import REPO_ROOT, stop_processes

log = logging.getLogger("deploy.apache_kafka")

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
LIB_ROOT = REPO_ROOT / ".local"  # the resolved jars, shared by make run, make test and make bench
MIN_JAVA = 17  # Kafka 4 brokers need Java 17+
HEAP = "512m"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
RESOLVE_TIMEOUT = 900.0
FALLBACK_HINT = "set LOCAL_KAFKA=tansu to use the Python-only broker instead"


class KafkaUnavailable(RuntimeError):
    """This machine cannot run Apache Kafka (no Java 17+, or no Maven and no resolved jars)."""


@dataclass(frozen=True)
class ScramUser:
    """A SASL/SCRAM-SHA-256 and -512 login written into the store when it is formatted."""

    name: str
    password: str


def kafka_version() -> str:
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if found is None:
        raise InfraStartError(f"{POM} names no <kafka.version>")
    return found.group(1)


def java_command(env: Mapping[str, str]) -> str | None:
    home = env.get("JAVA_HOME", "").strip()
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java", path=env.get("PATH"))


def java_major(java: str) -> int | None:
    """17 for 'openjdk version "17.0.15"', 8 for '"1.8.0_402"'; None if it does not run."""
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def library_dir(root: Path = LIB_ROOT) -> Path:
    """Where this pom's jars go: a new folder whenever the pom changes."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return root / f"kafka-lib-{kafka_version()}-{digest}"


def unavailable_reason(env: Mapping[str, str], root: Path = LIB_ROOT) -> str | None:
    """Why Apache Kafka cannot run here, or None when it can."""
    java = java_command(env)
    if java is None:
        return "no Java found (JAVA_HOME or java on PATH)"
    major = java_major(java)
    if major is None or major < MIN_JAVA:
        return f"{java} is Java {major or '?'}; Apache Kafka 4 needs Java {MIN_JAVA}+"
    resolved = (library_dir(root) / ".complete").exists()
    if not resolved and shutil.which("mvn", path=env.get("PATH")) is None:
        return "Maven (mvn) is needed once to fetch Apache Kafka's jars from Maven Central"
    return None


def resolve(env: Mapping[str, str], root: Path = LIB_ROOT) -> Path:
    """The folder of jars for POM, fetched with Maven the first time (one process at a time)."""
    lib = library_dir(root)
    if (lib / ".complete").exists():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".kafka-lib.lock"):
        if (lib / ".complete").exists():  # another process resolved it while we waited
            return lib
        mvn = shutil.which("mvn", path=env.get("PATH"))
        if mvn is None:
            raise KafkaUnavailable("Maven (mvn) is needed once to fetch Apache Kafka's jars")
        partial = lib.with_name(lib.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        log.info("Kafka: fetching Apache Kafka %s from Maven Central (once)", kafka_version())
        argv = [
            mvn,
            "--batch-mode",
            "--quiet",
            "--file",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        try:
            done = subprocess.run(
                argv, env=dict(env), capture_output=True, text=True, timeout=RESOLVE_TIMEOUT
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraStartError(
                f"fetching Apache Kafka from Maven Central took over {RESOLVE_TIMEOUT:.0f} s; "
                f"{FALLBACK_HINT}"
            ) from exc
        if done.returncode != 0:
            output = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise InfraStartError(
                f"could not fetch Apache Kafka {kafka_version()} from Maven Central "
                f"(mvn exited {done.returncode}; {FALLBACK_HINT}):\n  {output}"
            )
        (partial / ".complete").touch()
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        return lib


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ApacheKafka:
    """One Apache Kafka process (broker and controller in one) with its store in `data_dir`.

    The store is formatted on the first start and kept: topics and offsets survive a restart.
    A listener on `sasl_port` (SASL_PLAINTEXT, SCRAM-SHA-256/512 for `scram_users`) turns the
    authorizer on: there, only ACLs grant access (the PLAINTEXT listener stays a super user).
    Call start() from a long-lived thread: the JVM is told to die with the thread that spawned it.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        env: Mapping[str, str] | None = None,
        heap: str = HEAP,
        sasl_port: int | None = None,
        scram_users: Sequence[ScramUser] = (),
        lib_root: Path = LIB_ROOT,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._port = port
        self._env = dict(os.environ if env is None else env)
        self._heap = heap
        self._sasl_port = sasl_port
        self._scram_users = tuple(scram_users)
        self._lib_root = lib_root
        self._proc: subprocess.Popen[bytes] | None = None
        self._lib: Path | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        return self._data_dir / "server.log"

    def start(self) -> str:
        """Start the broker and block until it accepts connections; return its address."""
        if self._proc is not None:
            return self.bootstrap_servers
        reason = unavailable_reason(self._env, self._lib_root)
        if reason is not None:
            raise KafkaUnavailable(reason)
        for port in (self._port, self._sasl_port):
            if port is not None:
                require_free_port(port, "Apache Kafka")
        self._lib = resolve(self._env, self._lib_root)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        properties = self._write_properties(controller_port=free_port())
        if not (self._data_dir / "log" / "meta.properties").exists():
            self._format(properties)
        java = java_command(self._env)
        assert java is not None  # unavailable_reason checked it
        argv = [
            java,
            f"-Xms{self._heap}",
            f"-Xmx{self._heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self._data_dir}",
            "-cp",
            f"{self._lib}/*",
            "kafka.Kafka",
            str(properties),
        ]
        # The acceptors open last, once the broker has caught up with its metadata.
        self._proc = spawn_server(
            argv,
            name="Apache Kafka",
            address=self.bootstrap_servers,
            env=self._env,
            log_path=self._data_dir / "stdout.log",  # the JVM's own; Kafka logs to server.log
            ready_timeout=READY_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
            cwd=self._data_dir,
            error_log=self.log_path,
        )
        log.info(
            "Kafka: started Apache Kafka %s (pid %d) on %s (data %s)",
            kafka_version(),
            self._proc.pid,
            self.bootstrap_servers,
            self._data_dir,
        )
        return self.bootstrap_servers

    def stop(self) -> None:
        """A controlled shutdown (SIGTERM), then SIGKILL after STOP_TIMEOUT; idempotent."""
        if self._proc is not None:
            stop_processes([self._proc], STOP_TIMEOUT)
            self._proc = None

    def run_tool(self, main_class: str, *args: str) -> str:
        """Run one of Kafka's command-line tools (e.g. org.apache.kafka.tools.AclCommand) with
        this broker's jars; return its output, raise with it when the tool fails."""
        java = java_command(self._env)
        if java is None or self._lib is None:
            raise InfraStartError("start() the broker before running its tools")
        argv = [
            java,
            "-Xmx256m",
            # A tool runs for a second: the quick JIT tier and the simplest collector take about
            # 40% less CPU to start it than the server defaults (tests grant ACLs with many runs).
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:-UsePerfData",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self._data_dir}",
            "-cp",
            f"{self._lib}/*",
            main_class,
            *args,
        ]
        done = subprocess.run(
            argv, env=self._env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise InfraStartError(f"{main_class} failed: {done.stdout}{done.stderr}".strip())
        return done.stdout

    def _write_properties(self, *, controller_port: int) -> Path:
        listeners = {"PLAINTEXT": self._port, "CONTROLLER": controller_port}
        if self._sasl_port is not None:
            listeners["SASL_PLAINTEXT"] = self._sasl_port
        addresses = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
        advertised = ",".join(
            f"{name}://127.0.0.1:{port}" for name, port in listeners.items() if name != "CONTROLLER"
        )
        protocols = ",".join(
            f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in listeners
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Static voters: the controller's port may differ from one start to the next.
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": addresses,
            "advertised.listeners": advertised,
            "listener.security.protocol.map": protocols,
            "log.dirs": str(self._data_dir / "log"),
            # One node: every internal topic has one replica, and a new consumer group forms at
            # once instead of waiting 3 s for more members.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created by `make migrate` with their partition counts, never by a typo.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            # Two cores: fewer threads than the server defaults.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            # A development store: a week of data, at most 256 MB a partition.
            "log.retention.hours": "168",
            "log.retention.bytes": str(256 * 1024 * 1024),
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        if self._sasl_port is not None:
            settings |= {
                "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
                # A SASL listener needs a JAAS login module per mechanism (the broker exits
                # without one); SCRAM checks the credentials stored in the metadata log.
                **{
                    f"listener.name.sasl_plaintext.{mechanism}.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    )
                    for mechanism in ("scram-sha-256", "scram-sha-512")
                },
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # The PLAINTEXT and controller listeners authenticate nobody (User:ANONYMOUS):
                # they are the broker's own and the test's administration path.
                "super.users": "User:ANONYMOUS",
                "allow.everyone.if.no.acl.found": "false",
            }
        path = self._data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return path

    def _format(self, properties: Path) -> None:
        cluster_id = new_cluster_id()
        scram = [
            arg
            for user in self._scram_users
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for arg in ("--add-scram", f"{mechanism}=[name={user.name},password={user.password}]")
        ]
        self.run_tool(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties), *scram
        )


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID, base64url. Never one that starts with "-", which the
    storage tool takes for an option (as Kafka's own `random-uuid` avoids; 1 id in 64 did, and
    the broker failed to start with "--cluster-id expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.apache_kafka resolve`: fetch the jars now, or say why it cannot."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["resolve"]:
        print("usage: python -m deploy.apache_kafka resolve", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = unavailable_reason(os.environ)
    if reason is not None:
        print(f"Apache Kafka cannot run here ({reason}); the local stack will use Tansu")
        return 0
    try:
        print(f"Apache Kafka {kafka_version()}: {resolve(os.environ)}")
    except (InfraStartError, KafkaUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
