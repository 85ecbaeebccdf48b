"""What the whole stack costs when nobody uses it.

The five services (intent, inference, workflow, campaign and the gateway), the broker, PostgreSQL
and Redis run as `make run` runs them; after SETTLE seconds with no traffic the CPU each part uses
over SECONDS is read from /proc (bench.cpu). Target (issue 15): under 10 % of one core in all.
Results: bench/results/idle.json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import cpu
from bench.cases import write_document
from bench.stack import ALL_SERVICES, BenchStack

RESULTS = Path(__file__).resolve().parent / "results" / "idle.json"
SETTLE = 15.0
SECONDS = 60.0
TARGET_PERCENT = 10.0
NOT_THE_STACK = ("bench", "wrk", "other", "idle")


def measure(stack: BenchStack, seconds: float = SECONDS) -> dict[str, Any]:
    stack.use_services(ALL_SERVICES)
    stack.start_gateway(1)
    time.sleep(SETTLE)
    sampler = cpu.Sampler(stack.process_roots(), stack.database)
    sampler.start()
    time.sleep(seconds)
    shares = sampler.stop()
    total = sum(value for name, value in shares.items() if name not in NOT_THE_STACK)
    return {
        "broker": stack.broker,
        "seconds": seconds,
        "cpu_percent": shares,
        "stack_percent": round(total, 1),
        "met": total < TARGET_PERCENT,
    }


def report(result: dict[str, Any]) -> None:
    parts = ", ".join(
        f"{name} {value:.1f}"
        for name, value in result["cpu_percent"].items()
        if name not in NOT_THE_STACK
    )
    verdict = "met    " if result["met"] else "NOT MET"
    print(f"\nthe idle stack on {result['broker']}, {result['seconds']:.0f} s, % of one core:")
    print(f"  {parts}")
    print(f"  {verdict}  under {TARGET_PERCENT:.0f} % in all: {result['stack_percent']:.1f} %")


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    return write_document(RESULTS, "idle", int(result["seconds"]), wrk_version, {"idle": result})
