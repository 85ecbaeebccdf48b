"""Run the `wrk` HTTP load generator and read its numbers from one JSON line.

A small Lua script sets the Authorization header and, in `done()`, prints the latency percentiles,
the request rate and the errors. wrk counts a response with status >= 400 as a status error; the
socket errors are connect, read, write and timeout errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# wrk's own timeout is 2 s; the gateway answers 504 after REQUEST_TIMEOUT_SECONDS (5 s), so give
# it room to, and count that as an HTTP error rather than a socket timeout.
WRK_TIMEOUT = "10s"

_SCRIPT = """\
wrk.headers["Authorization"] = "Bearer {token}"

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '\\n{{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"p999_ms": %.3f, "max_ms": %.3f, "http_errors": %d, "socket_errors": %d}}\\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    http_errors: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.http_errors + self.socket_errors


class WrkError(RuntimeError):
    pass


def write_script(directory: Path, token: str) -> Path:
    if not token.isascii() or '"' in token or "\\" in token:
        raise ValueError("the API key cannot go into a Lua string as is")
    path = directory / "bench.lua"
    path.write_text(_SCRIPT.format(token=token))
    path.chmod(0o600)
    return path


def version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed: apt-get install -y wrk (`make bench` does this)")
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0].split(" Copyright")[0] if out.stdout else "wrk"


def run(url: str, script: Path, *, connections: int, threads: int, seconds: int) -> WrkResult:
    argv = ["wrk", f"-c{connections}", f"-t{threads}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", WRK_TIMEOUT, "-s", str(script), url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"requests"')]
    if proc.returncode != 0 or not lines:
        raise WrkError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return WrkResult(**json.loads(lines[-1]))
