"""What one benchmark run is (a Case), how it is measured and what it measured (a Row), how rows
are printed, and how a benchmark's results file is written."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import cpu, wrk
from bench.stack import BenchStack


@dataclass(frozen=True)
class Case:
    endpoint: str  # the path wrk requests
    script: str  # which Lua script drives it: "get" or "intent"
    workers: int
    connections: int
    threads: int
    uses_broker: bool = True  # its requests go through Kafka

    @property
    def method(self) -> str:
        return "POST" if self.script == "intent" else "GET"


@dataclass(frozen=True)
class Row:
    method: str
    endpoint: str
    workers: int
    connections: int
    threads: int
    result: wrk.WrkResult
    cpu_percent: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what a kind of run adds to its row

    def as_dict(self) -> dict[str, object]:
        result = {k: v for k, v in asdict(self.result).items() if v is not None}
        return {
            "method": self.method,
            "endpoint": self.endpoint,
            "workers": self.workers,
            "connections": self.connections,
            "threads": self.threads,
            **result,
            "cpu_percent_of_one_core": self.cpu_percent,
            **self.extra,
        }


def machine(wrk_version: str) -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_generator": wrk_version,
    }


def measured_run(
    stack: BenchStack, url: str, script: Path, *, connections: int, threads: int, seconds: int
) -> tuple[wrk.WrkResult, dict[str, float]]:
    """A measured wrk run, and the CPU each part of the stack used during it."""
    sampler = cpu.Sampler(stack.process_roots(), stack.database)
    sampler.start()
    result = wrk.run(url, script, connections=connections, threads=threads, seconds=seconds)
    return result, sampler.stop()


def write_document(
    path: Path,
    benchmark: str,
    seconds: int,
    wrk_version: str,
    document: dict[str, Any],
    *,
    ensure_ascii: bool = True,
) -> Path:
    """Write a benchmark's results: what it is, when and where it ran, then `document`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {
        "benchmark": benchmark,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(wrk_version),
        "seconds_per_run": seconds,
    }
    path.write_text(json.dumps({**head, **document}, indent=2, ensure_ascii=ensure_ascii) + "\n")
    return path


def latency_cells(result: wrk.WrkResult) -> tuple[str, str, str, str]:
    """A run's request rate and p50, p99 and p99.9 latencies, as the tables print them."""
    return (
        f"{result.rps:,.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{result.p999_ms:.2f}",
    )


def _render(lines: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]

    def fmt(line: tuple[str, ...]) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join(fmt(line) for line in lines)


def table(rows: list[Row]) -> str:
    header = ("endpoint", "workers", "clients", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors")
    return _render(
        [header]
        + [
            (
                f"{r.method} {r.endpoint}",
                str(r.workers),
                str(r.connections),
                *latency_cells(r.result),
                str(r.result.errors),
            )
            for r in rows
        ]
    )


def cpu_table(
    rows: list[Row], label: Callable[[Row], str] = lambda r: r.endpoint, heading: str = "endpoint"
) -> str:
    """Each run's CPU shares, in percent of one core (top's %CPU): the columns some run has."""
    columns = [c for c in cpu.COLUMNS if any(c in r.cpu_percent for r in rows)]
    header = (heading, "workers", "clients", *columns)
    return _render(
        [header]
        + [
            (
                label(r),
                str(r.workers),
                str(r.connections),
                *(f"{r.cpu_percent[c]:.0f}" if c in r.cpu_percent else "-" for c in columns),
            )
            for r in rows
        ]
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(latencies_ms: list[float]) -> dict[str, float]:
    """p50, p95, p99, mean, min and max of a list of latencies, in ms."""
    return {
        "p50_ms": round(statistics.median(latencies_ms), 3),
        "p95_ms": round(percentile(latencies_ms, 95), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "mean_ms": round(statistics.fmean(latencies_ms), 3),
        "min_ms": round(min(latencies_ms), 3),
        "max_ms": round(max(latencies_ms), 3),
    }
