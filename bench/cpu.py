"""Where the CPU goes during a run: each part of the stack's share, as `top` shows it.

A share is the CPU time a group of processes used during the run divided by the run's wall time,
in percent of one core (so 200 % is both cores of a 2-core machine). It is read from /proc before
and after the run, so it covers the whole run rather than one `top` refresh:

- each part of the stack (`gateway`, `intent`, `inference`, `workflow`, and the broker: `kafka`
  for Apache Kafka's JVM, `tansu` for Tansu): the process
  trees rooted at the pids the stack gives (a multi-worker gateway's workers included);
- `postgres`: the server's processes, less the backends serving other databases (another
  developer's tests on the same server count as `other`);
- `redis`: the Redis (or Valkey) server's processes. It is shared, so another developer's tests
  using it at the time count here too;
- `bench`: this process alone, not its children (the inference benchmark's fake model server
  runs in one of its threads);
- `wrk`: the load generator (this process's children reaped during the run);
- `other`: every other busy cycle on the machine; `idle`: what nobody used.

Linux only (/proc); elsewhere the shares are empty.
"""

from __future__ import annotations

import os
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# "postgres: 15/main: user database 127.0.0.1(5432) idle" or "... [local] idle": a client backend.
_CLIENT_BACKEND = re.compile(r"\(\d+\)|\[local\]")
COLUMNS = (
    "gateway",
    "intent",
    "inference",
    "workflow",
    "kafka",
    "tansu",
    "postgres",
    "redis",
    "bench",
    "wrk",
    "other",
    "idle",
)
_REDIS_COMMS = frozenset({"redis-server", "valkey-server"})


@dataclass(frozen=True)
class _Proc:
    ppid: int
    comm: str
    ticks: int  # utime + stime


@dataclass(frozen=True)
class _Snapshot:
    at: float
    procs: dict[int, _Proc]
    busy: int  # machine-wide jiffies, all CPUs
    idle: int
    children: float  # CPU seconds of reaped children (wrk)


def _read_procs() -> dict[int, _Proc]:
    procs: dict[int, _Proc] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        # fields[0] is the state (field 3); ppid is field 4, utime and stime fields 14 and 15.
        comm = head.partition("(")[2]
        procs[int(entry.name)] = _Proc(int(fields[1]), comm, int(fields[11]) + int(fields[12]))
    return procs


def _snapshot() -> _Snapshot:
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _Snapshot(
        at=time.monotonic(),
        procs=_read_procs(),
        busy=user + nice + system + irq + softirq + steal,
        idle=idle + iowait,
        children=usage.ru_utime + usage.ru_stime,
    )


def _tree(procs: dict[int, _Proc], roots: list[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in procs]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _postgres(procs: dict[int, _Proc], database: str) -> set[int]:
    """The server's processes, without the client backends of other databases."""
    pids: set[int] = set()
    for pid, proc in procs.items():
        if proc.comm != "postgres":
            continue
        try:
            cmdline = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if database in cmdline.split() or not _CLIENT_BACKEND.search(cmdline):
            pids.add(pid)
    return pids


class Sampler:
    """`start()` before a run, `stop()` after it: the CPU shares in percent of one core."""

    def __init__(self, roots: dict[str, list[int]], database: str) -> None:
        self._roots = roots
        self._database = database
        self._before: _Snapshot | None = None

    def start(self) -> None:
        self._before = _snapshot() if PROC.joinpath("stat").exists() else None

    def stop(self) -> dict[str, float]:
        before = self._before
        if before is None:
            return {}
        after = _snapshot()
        seconds = after.at - before.at
        procs = {**before.procs, **after.procs}  # the tree as it was at either end

        def used(pids: set[int]) -> float:
            ticks = 0
            for pid in pids:
                if pid in after.procs:  # a pid that left took its ticks with it
                    old = before.procs.get(pid)
                    ticks += after.procs[pid].ticks - (old.ticks if old else 0)
            return ticks / TICKS / seconds * 100

        shares = {name: used(_tree(procs, pids)) for name, pids in self._roots.items()}
        shares["postgres"] = used(_postgres(after.procs, self._database))
        shares["redis"] = used({pid for pid, p in after.procs.items() if p.comm in _REDIS_COMMS})
        shares["bench"] = used({os.getpid()})
        shares["wrk"] = (after.children - before.children) / seconds * 100
        jiffies = (after.busy - before.busy) + (after.idle - before.idle)
        cores = os.cpu_count() or 1
        if jiffies > 0:
            busy = (after.busy - before.busy) / jiffies * cores * 100
            shares["other"] = max(0.0, busy - sum(shares.values()))
            shares["idle"] = (after.idle - before.idle) / jiffies * cores * 100
        return {name: round(value, 1) for name, value in shares.items()}
