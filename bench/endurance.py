"""No slowdown with use: ROUND_TRIPS intent requests in a row through one broker.

One client POSTs the intent benchmark's six messages in turn to `/api/ai-assistant/intent`, one
request at a time, with every service running as under `make run`: half the messages start a run,
whose first step the campaign service answers (the benchmark's database has no jobs, so each such
run ends there, asking which job is meant). After a short warm-up, the p50 of the last BLOCK
round trips is set against the p50 of the first BLOCK: a broker (or a table) that gets slower as
it fills shows here.
Target (issue 15): within 20 %. Results: bench/results/endurance.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx

from bench import intent
from bench.cases import summary, write_document
from bench.stack import ALL_SERVICES, BenchStack

log = logging.getLogger("bench.endurance")
RESULTS = Path(__file__).resolve().parent / "results" / "endurance.json"
ROUND_TRIPS = 30_000
BLOCK = 3_000
WARMUP = 300
MAX_SLOWDOWN = 1.20


class BenchmarkError(RuntimeError):
    """A round trip failed: the figures would not mean what they say."""


def measure(stack: BenchStack, round_trips: int = ROUND_TRIPS) -> dict[str, Any]:
    stack.use_services(ALL_SERVICES)
    url = stack.start_gateway(1)
    messages = intent.messages()
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    latencies: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10.0) as client:
        for number in range(-WARMUP, round_trips):
            body = {"message": messages[number % len(messages)]}
            started = time.perf_counter()
            response = client.post(intent.INTENT, json=body)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise BenchmarkError(f"round trip {number}: HTTP {response.status_code}")
            if number >= 0:
                latencies.append(elapsed)
            if number > 0 and number % BLOCK == 0:
                log.info("%d round trips", number)
    blocks = [summary(latencies[i : i + BLOCK]) for i in range(0, len(latencies), BLOCK)]
    ratio = blocks[-1]["p50_ms"] / blocks[0]["p50_ms"]
    return {
        "broker": stack.broker,
        "round_trips": len(latencies),
        "block": BLOCK,
        "warmup": WARMUP,
        "blocks": blocks,
        "last_over_first_p50": round(ratio, 3),
        "met": ratio <= MAX_SLOWDOWN,
    }


def report(result: dict[str, Any]) -> None:
    print(f"\n{result['round_trips']} intent round trips in a row on {result['broker']}:")
    print("  block     p50 ms  p99 ms")
    for index, block in enumerate(result["blocks"]):
        first = index * result["block"] + 1
        print(f"  {first:>6}+  {block['p50_ms']:7.2f} {block['p99_ms']:7.2f}")
    verdict = "met    " if result["met"] else "NOT MET"
    limit = f"last {result['block']} p50 within {MAX_SLOWDOWN - 1:.0%} of the first"
    print(f"  {verdict}  {limit}: {result['last_over_first_p50']:.3f}x")


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    return write_document(RESULTS, "endurance", 0, wrk_version, {"endurance": result})
