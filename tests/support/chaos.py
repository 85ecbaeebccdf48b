"""The chaos suite's machinery (tests/chaos): the product's processes on fixed addresses, killed
with SIGKILL and started again as they were; the faults, each timed from its injection until the
system makes progress again; and the table of figures the suite prints (docs/chaos.md).

Blocking work (starting a process, restarting a server) runs on one long-lived thread, `ops`:
the children are told to die with the thread that spawned them, and the event loop must keep
running meanwhile (the test's own action owner heartbeats to its consumer group on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deploy.servers import free_port
from tests.support.processes import ServiceProcess, python_module
from tests.support.stack import Launcher, stack_env

T = TypeVar("T")
SERVICES = ("intent", "inference", "workflow", "campaign")
RESTART_TIMEOUT = 90.0  # a killed member keeps its partitions until its session times out
# Progress since this time.monotonic(): what was seen ("an email accepted", "nothing left to
# send"), or None while there is none.
Probe = Callable[[float], Awaitable[str | None]]


async def on(ops: ThreadPoolExecutor, call: Callable[..., T], *args: Any) -> T:
    """Run blocking `call(*args)` on the `ops` thread without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(ops, call, *args)


class Processes:
    """The four services and the gateway (on a port of its own, the same after a restart, so
    clients keep their address), each started again with the command line and settings it had."""

    def __init__(
        self, launcher: Launcher, ops: ThreadPoolExecutor, envs: Mapping[str, Mapping[str, str]]
    ) -> None:
        self._launcher = launcher
        self._ops = ops
        self._envs = envs
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self._argv = {name: python_module(f"services.{name}") for name in SERVICES}
        self._argv["gateway"] = python_module("services.gateway", "serve", "--port", str(port))
        self.running: dict[str, ServiceProcess] = {}

    def _start_now(self, names: Sequence[str], timeout: float) -> None:
        started = []
        for name in names:
            env = stack_env(self._launcher.settings, **self._envs.get(name, {}))
            proc = ServiceProcess(name, self._argv[name], env).start()
            self._launcher.started.append(proc)
            self.running[name] = proc
            started.append(proc)
        for proc in started:  # all at once: a restart costs one session timeout, not one each
            gateway = proc.name == "gateway"
            proc.wait_for(
                "Application startup complete" if gateway else "started successfully", timeout
            )

    async def start(self, *names: str, timeout: float = RESTART_TIMEOUT) -> None:
        """Start `names` together; return when every one is ready."""
        await on(self._ops, self._start_now, names, timeout)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        self.running[name].kill()

    def save_output(self, folder: Path) -> None:
        """Each process's last output lines, in `folder`/<name>-<n>.log (n: its start)."""
        folder.mkdir(parents=True, exist_ok=True)
        for number, proc in enumerate(self._launcher.started):
            (folder / f"{proc.name}-{number}.log").write_text(proc.output())

    def stop_all(self) -> None:
        """SIGTERM to every process at once, then wait for each (SIGKILL after 10 s)."""
        for proc in self.running.values():
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGTERM)
        self._launcher.stop_all()


@dataclass
class Fault:
    """One fault: when it was injected, when the part was back, when progress was seen again."""

    name: str
    progress: str  # what counts as progress after it
    injected: float = field(default_factory=time.monotonic)
    stopped: float | None = None  # the part is down
    restored: float | None = None
    recovered: float | None = None
    seen: list[str] = field(default_factory=list)

    @property
    def down_seconds(self) -> float | None:
        return None if self.restored is None else self.restored - self.injected

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.injected


async def inject(
    name: str,
    probes: Mapping[str, Probe],
    fault: Callable[[Fault], Awaitable[None]],
    timeout: float,
    *,
    after_restore: bool = False,
) -> Fault:
    """Inject `fault` (it sets `stopped` once the part is down, and returns once it is back) and
    meanwhile watch until every probe has seen progress since the part was down (with
    `after_restore`: since it was back, for a killed process, whose last acts can land just
    after its death); give up `timeout` seconds after the injection (`recovered` stays None).
    Returns when both are over."""
    record = Fault(name, " and ".join(probes))

    async def watch() -> None:
        pending = dict(probes)
        while pending and time.monotonic() < record.injected + timeout:
            since = record.restored if after_restore else record.stopped
            if since is None:
                await asyncio.sleep(0.1)
                continue
            for key, probe in list(pending.items()):
                with contextlib.suppress(Exception):  # a probe of a part that is still down
                    seen = await probe(since)
                    if seen:
                        record.seen.append(seen)
                        del pending[key]
            if pending:
                await asyncio.sleep(0.1)
        if not pending:
            record.recovered = time.monotonic()

    watching = asyncio.create_task(watch())
    try:
        await fault(record)
        record.restored = time.monotonic()
    finally:
        await watching
    return record


def _seconds(value: float | None) -> str:
    return "no progress" if value is None else f"{value:.1f}"


def fault_table(faults: Sequence[Fault]) -> str:
    """The faults as a Markdown table: what, down for, recovered after, measured by."""
    lines = [
        "| fault | down (s) | progress again after (s) | progress seen |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {f.name} | {_seconds(f.down_seconds)} | {_seconds(f.recovery_seconds)} | "
        f"{'; '.join(f.seen) or f.progress + ': none'} |"
        for f in faults
    ]
    return "\n".join(lines)


def figures_table(figures: Mapping[str, object]) -> str:
    lines = ["| figure | value |", "| --- | ---: |"]
    lines += [f"| {name} | {value} |" for name, value in figures.items()]
    return "\n".join(lines)
