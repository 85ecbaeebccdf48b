"""What one benchmark run is (a Case), what it measured (a Row), and how rows are printed."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import cpu, wrk


@dataclass(frozen=True)
class Case:
    endpoint: str  # the path wrk requests
    script: str  # which Lua script drives it: "get" or "intent"
    workers: int
    connections: int
    threads: int

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
                f"{r.result.rps:,.0f}",
                f"{r.result.p50_ms:.2f}",
                f"{r.result.p99_ms:.2f}",
                f"{r.result.p999_ms:.2f}",
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
