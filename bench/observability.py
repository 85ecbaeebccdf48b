"""What metrics, tracing and the access log cost per request when nothing is exported (issue 19).

The gateway's own layers are put one at a time on a trivial FastAPI route, in this process, and
the route is called through the ASGI interface (httpx's ASGITransport: no sockets, no broker), so
the differences are the layers' cost and nothing else:

- bare: the route alone;
- + metrics: `HttpMetricsMiddleware` (a counter and a histogram per request);
- + tracing: OpenTelemetry's FastAPI instrumentation with the provider `setup_tracing` makes when
  no OTLP endpoint is set (spans not recorded, context still propagated);
- + access log: `AccessLogMiddleware`, its JSON line written to a discarded stream;
- + traced and exported: the same with spans recorded (an in-memory exporter), for comparison.

Each variant: 2,000 warm-up calls, then 20,000 timed, in rounds alternating the variants so that
machine noise falls on all of them alike. Results: bench/results/observability.json.
"""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from bench.cases import write_document
from shared.logs import AccessLogMiddleware, JsonFormatter
from shared.metrics import HttpMetricsMiddleware

RESULTS = Path(__file__).resolve().parent / "results" / "observability.json"
CALLS = 20_000
WARMUP = 2_000
ROUNDS = 10


def _app(*, metrics: bool, tracing: str | None, access_log: bool) -> FastAPI:
    app = FastAPI()

    @app.get("/api/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    if tracing is not None:
        sampler = ALWAYS_ON if tracing == "exported" else ALWAYS_OFF
        provider = TracerProvider(sampler=ParentBased(sampler))
        if tracing == "exported":
            provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    if metrics:
        app.add_middleware(HttpMetricsMiddleware)
    if access_log:
        app.add_middleware(AccessLogMiddleware)
    return app


VARIANTS: dict[str, Callable[[], FastAPI]] = {
    "bare": lambda: _app(metrics=False, tracing=None, access_log=False),
    "metrics": lambda: _app(metrics=True, tracing=None, access_log=False),
    "metrics + tracing (not exported)": lambda: _app(metrics=True, tracing="off", access_log=False),
    "metrics + tracing + access log (the gateway)": lambda: _app(
        metrics=True, tracing="off", access_log=True
    ),
    "metrics + tracing exported + access log": lambda: _app(
        metrics=True, tracing="exported", access_log=True
    ),
}


async def _calls(client: httpx.AsyncClient, count: int) -> list[float]:
    timings = []
    for n in range(count):
        started = time.perf_counter()
        response = await client.get(f"/api/items/{n % 100}")
        timings.append((time.perf_counter() - started) * 1e6)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text}")
    return timings


async def _measure() -> dict[str, Any]:
    access = logging.getLogger("gateway.access")
    quiet = logging.StreamHandler(io.StringIO())  # the JSON line is built, then discarded
    quiet.setFormatter(JsonFormatter())
    access.addHandler(quiet)
    access.setLevel(logging.INFO)
    access.propagate = False
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=make()), base_url="http://b")
        for name, make in VARIANTS.items()
    }
    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for client in clients.values():
            await _calls(client, WARMUP)
        for _ in range(ROUNDS):
            for name, client in clients.items():
                timings[name] += await _calls(client, CALLS // ROUNDS)
    finally:
        for client in clients.values():
            await client.aclose()
        access.removeHandler(quiet)
    bare = statistics.median(timings["bare"])
    return {
        "calls_per_variant": CALLS,
        "variants": {
            name: {
                "p50_us": round(statistics.median(values), 1),
                "mean_us": round(statistics.fmean(values), 1),
                "added_p50_us": round(statistics.median(values) - bare, 1),
            }
            for name, values in timings.items()
        },
    }


def measure() -> dict[str, Any]:
    return asyncio.run(_measure())


def report(result: dict[str, Any]) -> None:
    print(
        f"\nobservability cost per request, in process ({result['calls_per_variant']:,} calls "
        "each, through ASGI, no sockets):"
    )
    print(f"  {'variant':<46} {'p50 us':>8} {'mean us':>8} {'added p50':>10}")
    for name, figures in result["variants"].items():
        print(
            f"  {name:<46} {figures['p50_us']:>8.1f} {figures['mean_us']:>8.1f} "
            f"{figures['added_p50_us']:>10.1f}"
        )


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    return write_document(RESULTS, "observability", 0, wrk_version, {"observability": result})


if __name__ == "__main__":
    found = measure()
    report(found)
