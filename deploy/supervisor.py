"""Run the services as child processes and stop them together, so `make run` leaves no orphan."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

log = logging.getLogger("deploy.supervisor")

REPO_ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1
# Looked up once, in the parent: a preexec_fn runs between fork and exec, where loading a
# library could deadlock on a lock that another thread held at the moment of the fork.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """A `preexec_fn` that makes Linux SIGTERM the child when its parent dies, even by SIGKILL.

    Linux ties this to the parent *thread*: spawn from a thread that lives as long as the child
    (the main thread), never from a short-lived worker thread, or the child dies with the worker.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def spawn_child(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None, stdout: IO[bytes] | int
) -> subprocess.Popen[bytes]:
    """A child process leading a process group of its own (stop_processes signals the group),
    stdout and stderr to `stdout`, told to die with the spawning thread (die_with_parent)."""
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
        process_group=0,
    )


def pid_alive(pid: int) -> bool:
    """Whether a process runs; a zombie waiting for a slow init to reap it counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM every process group at once, then SIGKILL whatever outlives the shared deadline.

    Each process leads its own group (spawned with process_group=0), so its own children get
    the signal too.
    """
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0f s; killing it", proc.pid, timeout)
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def describe_exit(code: int) -> str:
    """'exit code 3' or 'killed by SIGKILL': Popen reports a signal as a negative code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class ChildSpec:
    """One service to run: its name (the log prefix), its command line and its whole environment."""

    name: str
    argv: list[str]
    env: dict[str, str]


class Supervisor:
    """Owns the service processes: one Ctrl-C, one SIGTERM or one dead service stops them all.

    Children get their own process group, so a Ctrl-C in the terminal reaches only us and the
    services are stopped in order (SIGTERM, then SIGKILL after `stop_timeout`) rather than all
    interrupted at once.
    """

    def __init__(
        self, specs: list[ChildSpec], *, log_dir: Path | None = None, stop_timeout: float = 10.0
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        self._specs = list(specs)
        self._log_dir = log_dir
        self._stop_timeout = stop_timeout
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._relays: list[threading.Thread] = []
        self._stop_requested = threading.Event()
        self._stdout_lock = threading.Lock()

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items()}

    def start(self) -> None:
        """Spawn every child; if one cannot be spawned, stop those already running."""
        if self._procs:
            return
        try:
            for spec in self._specs:
                self._procs[spec.name] = self._spawn(spec)
                log.info("started %s (pid %d)", spec.name, self._procs[spec.name].pid)
        except BaseException:
            self.stop()
            raise

    def wait(self) -> int:
        """Block until SIGINT/SIGTERM (0) or until a child exits on its own (1).

        Must run in the main thread, where Python delivers signals. Call stop() afterwards.
        """
        self._stop_requested.clear()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            self._stop_requested.set()

        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, request_stop) for sig in signals}
        try:
            while not self._stop_requested.wait(0.2):
                for name, proc in self._procs.items():
                    code = proc.poll()
                    if code is not None:
                        log.error("%s stopped unexpectedly (%s)", name, describe_exit(code))
                        return 1
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def stop(self) -> None:
        """Stop every child still running; safe to call any number of times."""
        stop_processes(list(self._procs.values()), self._stop_timeout)
        for relay in self._relays:
            # A grandchild that inherited the pipe could hold it open; don't hang on it.
            relay.join(timeout=1.0)
        self._relays.clear()

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            with (self._log_dir / f"{spec.name}.log").open("ab") as out:
                return self._popen(spec, out)
        proc = self._popen(spec, subprocess.PIPE)
        assert proc.stdout is not None
        relay = threading.Thread(
            target=self._relay, args=(spec.name, proc.stdout), name=f"[{spec.name}]", daemon=True
        )
        relay.start()
        self._relays.append(relay)
        return proc

    @staticmethod
    def _popen(spec: ChildSpec, stdout: IO[bytes] | int) -> subprocess.Popen[bytes]:
        return spawn_child(spec.argv, spec.env, REPO_ROOT, stdout)

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").rstrip("\r\n")
                with self._stdout_lock:
                    sys.stdout.write(f"[{name}] {line}\n")
                    sys.stdout.flush()
