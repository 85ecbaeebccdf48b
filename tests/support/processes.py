"""Run the product's own processes (`python -m services.<name>`) from tests, and stop them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from deploy.supervisor import die_with_parent

REPO = Path(__file__).resolve().parents[2]


class ProcessFailed(AssertionError):
    pass


class ServiceProcess:
    """One child process whose output lines the test can wait on."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.lines: deque[str] = deque(maxlen=2_000)
        self._new_line = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> ServiceProcess:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """Block until an output line matches `pattern`; fail with the output if it never does."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                lines = list(self.lines)
                for line in lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(lines)
                if (
                    self.proc is not None
                    and self.proc.poll() is not None
                    and seen == len(self.lines)
                ):
                    raise ProcessFailed(
                        f"{self.name} exited with {self.proc.returncode} before printing "
                        f"{pattern!r}:\n{self.output()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProcessFailed(f"{self.name} did not print {pattern!r}:\n{self.output()}")
                self._new_line.wait(min(remaining, 0.2))

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def child_env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env
