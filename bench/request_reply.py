"""The gateway's Kafka request/reply path under load.

`GET /api/services/intent/ping` goes gateway -> Kafka (intent.commands) -> intent service ->
Kafka (the gateway's reply topic) -> gateway. `GET /healthz` is the same HTTP stack without
Kafka, so the difference between the two is what the round trip adds. Each endpoint is driven
by wrk with 1 connection (latency) and 32 connections (throughput); then the 32-connection runs
are repeated with the gateway on 2 uvicorn workers.

Everything (Tansu, the intent service, the gateway) runs on this machine, wrk included, so the
load generator competes with the stack for the same cores; compare numbers from one machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import wrk
from bench.stack import BenchStack, StackError
from deploy.infra import InfraStartError
from shared.errors import DependencyUnavailable

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results" / "request_reply.json"
PING = "/api/services/intent/ping"
HEALTHZ = "/healthz"
WARMUP_SECONDS = 3


@dataclass(frozen=True)
class Case:
    path: str
    workers: int
    connections: int
    threads: int


@dataclass(frozen=True)
class Row:
    endpoint: str
    workers: int
    connections: int
    threads: int
    result: wrk.WrkResult

    def as_dict(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint,
            "workers": self.workers,
            "connections": self.connections,
            "threads": self.threads,
            **asdict(self.result),
        }


def cases(two_workers: bool) -> list[Case]:
    one = [Case(p, 1, c, t) for p in (HEALTHZ, PING) for c, t in ((1, 1), (32, 2))]
    two = [Case(p, 2, 32, 2) for p in (HEALTHZ, PING)] if two_workers else []
    return one + two


def measure(stack: BenchStack, script: Path, todo: list[Case], seconds: int) -> list[Row]:
    rows: list[Row] = []
    for workers in sorted({case.workers for case in todo}):
        url = stack.start_gateway(workers)
        log.info("gateway ready at %s with %d worker(s); warming up", url, workers)
        for path in (HEALTHZ, PING):
            wrk.run(url + path, script, connections=8, threads=2, seconds=WARMUP_SECONDS)
        for case in (c for c in todo if c.workers == workers):
            what = (case.path, case.connections, case.threads, seconds)
            log.info("wrk %s: %d connection(s), %d thread(s), %d s", *what)
            result = wrk.run(
                url + case.path,
                script,
                connections=case.connections,
                threads=case.threads,
                seconds=seconds,
            )
            rows.append(Row(case.path, workers, case.connections, case.threads, result))
    return rows


def table(rows: list[Row]) -> str:
    header = ("endpoint", "workers", "clients", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors")
    lines = [header] + [
        (
            r.endpoint,
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
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join(fmt(line) for line in lines)


def kafka_overhead_ms(rows: list[Row]) -> float | None:
    """p50 of a ping minus p50 of /healthz, one client, one worker: the round trip's cost."""
    p50 = {r.endpoint: r.result.p50_ms for r in rows if r.connections == 1 and r.workers == 1}
    if PING in p50 and HEALTHZ in p50:
        return round(p50[PING] - p50[HEALTHZ], 3)
    return None


def write_results(rows: list[Row], seconds: int, wrk_version: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "gateway request/reply over Kafka (python -m bench)",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_generator": wrk_version,
        },
        "seconds_per_run": seconds,
        "kafka_round_trip_p50_ms": kafka_overhead_ms(rows),
        "rows": [row.as_dict() for row in rows],
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument(
        "--two-workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure 32 clients against a gateway with 2 uvicorn workers",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll
    try:
        wrk_version = wrk.version()
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp, BenchStack(Path(tmp)) as stack:
            script = wrk.write_script(Path(tmp), stack.api_key)
            rows = measure(stack, script, cases(args.two_workers), args.seconds)
    except (wrk.WrkError, StackError, InfraStartError, DependencyUnavailable) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    write_results(rows, args.seconds, wrk_version)
    print()
    print(table(rows))
    overhead = kafka_overhead_ms(rows)
    if overhead is not None:
        print(f"\nthe Kafka round trip adds {overhead:.2f} ms at p50 (1 client, 1 worker)")
    print(f"results written to {RESULTS}")
    errors = sum(r.result.errors for r in rows)
    if errors:
        print(f"bench: {errors} request(s) failed; see the errors column", file=sys.stderr)
    return 0
