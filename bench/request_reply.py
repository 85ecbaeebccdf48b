"""The gateway's Kafka request/reply path under load.

`GET /api/services/intent/ping` goes gateway -> Kafka (intent.commands) -> intent service ->
Kafka (the gateway's reply topic) -> gateway. `GET /healthz` is the same HTTP stack without
Kafka, so the difference between the two is what the round trip adds. Each endpoint is driven
by wrk with 1 connection (latency) and 32 connections (throughput); then the 32-connection runs
are repeated with the gateway on 2 uvicorn workers. Results: bench/results/request_reply.json.

Everything (Tansu, the services, the gateway) runs on this machine, wrk included, so the load
generator competes with the stack for the same cores; compare numbers from one machine.
"""

from __future__ import annotations

from pathlib import Path

from bench.cases import Case, Row, write_document

RESULTS = Path(__file__).resolve().parent / "results" / "request_reply.json"
PING = "/api/services/intent/ping"
HEALTHZ = "/healthz"


def cases(two_workers: bool) -> list[Case]:
    one = [_case(p, 1, c, t) for p in (HEALTHZ, PING) for c, t in ((1, 1), (32, 2))]
    two = [_case(p, 2, 32, 2) for p in (HEALTHZ, PING)] if two_workers else []
    return one + two


def _case(path: str, workers: int, connections: int, threads: int) -> Case:
    return Case(path, "get", workers, connections, threads, uses_broker=path != HEALTHZ)


def kafka_overhead_ms(rows: list[Row]) -> float | None:
    """p50 of a ping minus p50 of /healthz, one client, one worker: the round trip's cost."""
    p50 = {r.endpoint: r.result.p50_ms for r in rows if r.connections == 1 and r.workers == 1}
    if PING in p50 and HEALTHZ in p50:
        return round(p50[PING] - p50[HEALTHZ], 3)
    return None


def write_results(rows: list[Row], seconds: int, wrk_version: str) -> Path:
    document = {
        "kafka_round_trip_p50_ms": kafka_overhead_ms(rows),
        "rows": [row.as_dict() for row in rows],
    }
    benchmark = "gateway request/reply over Kafka (python -m bench)"
    return write_document(RESULTS, benchmark, seconds, wrk_version, document)
