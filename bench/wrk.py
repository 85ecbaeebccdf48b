"""Run the `wrk` HTTP load generator and read its numbers from one JSON line.

A small Lua script sets the Authorization header and, in `done()`, prints the latency percentiles,
the request rate and the errors. wrk counts a response with status >= 400 as a status error; the
socket errors are connect, read, write and timeout errors.

`write_script` makes the GET script (no per-request Lua, so wrk stays as cheap as it can be);
`write_post_script` makes one that POSTs a JSON body chosen per request from a small rotating set,
and counts in `response()` the answers that are not 2xx and those that carry a `workflow_id`;
`write_bodies_script` POSTs given JSON bodies in turn (each request formatted once, in `init()`)
and counts the answers that are not 2xx and those that say `"cached":true`.
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
# Each endpoint gets an unmeasured run first (`warm_up`).
WARMUP_SECONDS = 3
# Apache Kafka's JVM compiles its hot paths during its first minute of traffic (its CPU in the
# first measured run was twice that of later ones): the first run through it warms up longer.
JVM_WARMUP_SECONDS = 20
WARMUP_CONNECTIONS = 8


def _fill(template: str, **values: str) -> str:
    """Replace each `@name@` (Lua and JSON are full of braces, so no str.format)."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    return template


# `extra` is "" for the GET script and `, "non_2xx": %d, "<its counter>": %d` for a POST one.
_DONE = """\
function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '\\n{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"p999_ms": %.3f, "max_ms": %.3f, "http_errors": %d, "socket_errors": %d@extra@}\\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout@extra_args@))
end
"""

_GET_SCRIPT = 'wrk.headers["Authorization"] = "Bearer @token@"\n\n' + _fill(
    _DONE, extra="", extra_args=""
)

# The POST scripts: one template, filled per use with the name of its table, one counter of 2xx
# answers (and the marker in the body that counts one, and its key in the JSON line), what else
# `init()` prepares and how `request()` picks a request. Each thread has its own Lua state:
# `setup()` (main state) numbers the threads and keeps them so that `done()` can add up their
# counters. `@token@` and `@table@` are left for `_write_post`.
_POST_TEMPLATE = """\
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer @token@"
wrk.headers["Content-Type"] = "application/json"

local @items@ = {
@table@
}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  n = id - 1                       -- threads start at different @items@
  non2xx = 0
  @counter@ = 0
@init@end

@request@
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif body:find('@marker@', 1, true) then
    @counter@ = @counter@ + 1
  end
end

function sum(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get(name)
  end
  return total
end

"""


def _post_script(
    *, items: str, counter: str, marker: str, key: str, init: str, request: str
) -> str:
    done = _fill(
        _DONE,
        extra=f', "non_2xx": %d, "{key}": %d',
        extra_args=f', sum("non2xx"), sum("{counter}")',
    )
    script = _fill(
        _POST_TEMPLATE, items=items, counter=counter, marker=marker, init=init, request=request
    )
    return script + done


# A conversation is one pass over the messages, so the service's previous-turn lookup runs as in
# production (none of the messages needs clarifying, so the previous turn changes nothing).
_POST_SCRIPT = _post_script(
    items="messages",
    counter="workflows",
    marker='"workflow_id":"',
    key="workflow_replies",
    init="",
    request="""\
function request()
  local i = n % #messages + 1
  local conversation = string.format("bench-%d-%d", id, math.floor(n / #messages))
  n = n + 1
  local body = '{"message": ' .. messages[i] .. ', "conversation_id": "' .. conversation .. '"}'
  return wrk.format(nil, nil, wrk.headers, body)
end
""",
)

# Each thread formats its requests once; `request()` only picks the next one.
_BODIES_SCRIPT = _post_script(
    items="bodies",
    counter="cached",
    marker='"cached":true',
    key="cached_replies",
    init="""\
  prepared = {}
  for i, body in ipairs(bodies) do
    prepared[i] = wrk.format(nil, nil, nil, body)
  end
""",
    request="""\
function request()
  local i = n % #prepared + 1
  n = n + 1
  return prepared[i]
end
""",
)


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
    non_2xx: int | None = None  # counted by the POST script only
    workflow_replies: int | None = None  # 2xx answers with a workflow_id (POST script only)
    cached_replies: int | None = None  # 2xx answers with "cached":true (bodies script only)

    @property
    def errors(self) -> int:
        """Socket errors plus non-2xx answers (status >= 400 when the script cannot tell)."""
        bad_status = self.http_errors if self.non_2xx is None else self.non_2xx
        return bad_status + self.socket_errors


class WrkError(RuntimeError):
    pass


def _check_token(token: str) -> None:
    if not token.isascii() or '"' in token or "\\" in token:
        raise ValueError("the API key cannot go into a Lua string as is")


def lua_string(text: str) -> str:
    """A double-quoted Lua literal of `text` (UTF-8 bytes pass through as they are)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def _write(directory: Path, name: str, script: str) -> Path:
    path = directory / f"{name}.lua"
    path.write_text(script, encoding="utf-8")
    path.chmod(0o600)
    return path


def _write_post(directory: Path, name: str, script: str, token: str, as_json: list[str]) -> Path:
    """`script` with the token and the table of JSON texts (as Lua strings) filled in."""
    table = "\n".join(f"  {lua_string(body)}," for body in as_json)
    return _write(directory, name, _fill(script, token=token, table=table))


def write_script(directory: Path, token: str) -> Path:
    _check_token(token)
    return _write(directory, "bench", _fill(_GET_SCRIPT, token=token))


def write_post_script(directory: Path, token: str, messages: list[str], name: str) -> Path:
    """A script that POSTs `{"message": ..., "conversation_id": ...}` bodies, one message per
    request in turn; `done()` adds `non_2xx` and `workflow_replies` to the summary."""
    _check_token(token)
    if not messages:
        raise ValueError("at least one message is needed")
    as_json = [json.dumps(message, ensure_ascii=False) for message in messages]
    return _write_post(directory, name, _POST_SCRIPT, token, as_json)


def write_bodies_script(
    directory: Path, token: str, bodies: list[dict[str, object]], name: str
) -> Path:
    """A script that POSTs `bodies` (as JSON) one per request in turn; `done()` adds `non_2xx`
    and `cached_replies` to the summary."""
    _check_token(token)
    if not bodies:
        raise ValueError("at least one body is needed")
    as_json = [json.dumps(body, ensure_ascii=False, separators=(",", ":")) for body in bodies]
    return _write_post(directory, name, _BODIES_SCRIPT, token, as_json)


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


def warm_up(url: str, script: Path, seconds: int = WARMUP_SECONDS) -> WrkResult:
    """The unmeasured run before an endpoint's measured ones."""
    return run(url, script, connections=WARMUP_CONNECTIONS, threads=2, seconds=seconds)
