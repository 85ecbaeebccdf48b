"""An issue's target for a benchmark (judged on one run's wrk numbers) and how verdicts print."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.wrk import WrkResult


@dataclass(frozen=True)
class Target:
    name: str
    connections: int  # judged on the run with this many clients
    met: Callable[[WrkResult], bool]
    measured: Callable[[WrkResult], str]

    def verdict(self, result: WrkResult, also: bool = True) -> dict[str, Any]:
        """What was measured and whether the target was met (and `also` holds)."""
        return {
            "target": self.name,
            "measured": self.measured(result),
            "met": self.met(result) and also,
        }


def print_verdicts(verdicts: list[dict[str, Any]]) -> None:
    for v in verdicts:
        print(f"  {'met    ' if v['met'] else 'NOT MET'}  {v['target']:<28} {v['measured']}")
