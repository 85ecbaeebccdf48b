"""What `POST /api/ai-assistant/chat` adds to `POST /api/ai-assistant/intent` (issue 16).

The chat detects a message's intent exactly as the intent endpoint does (the same command to the
intent service, in a conversation), then answers it: a search asks the campaign service for the
matching candidates (counted, the best ten ranked and flagged), a status question for the
caller's campaign; both turns are stored in the conversation. The difference between the two
endpoints' latencies is the chat's own cost.

The bench database holds the demo data (10,000 candidates, as `make run` seeds) and one campaign
of the bench user. One client sends each message to both endpoints in turn (intent, chat, intent,
chat, ...), each endpoint in a conversation of its own, after a warm-up; p50/p95/p99 per endpoint
and message, and the added latency at p50 and p95. Results: bench/results/chat.json.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.cases import summary, write_document
from bench.stack import BenchStack
from services.campaign.seed import seed

log = logging.getLogger("bench.chat")
RESULTS = Path(__file__).resolve().parent / "results" / "chat.json"
CANDIDATES = 10_000
REQUESTS = 300  # per endpoint and message
WARMUP = 30
MESSAGES = {
    "search": "how many senior python developers in Berlin do we have?",
    "status": "how is my last campaign doing?",
}
EXPECTED_KIND = {"search": "search", "status": "campaign_status"}


class BenchmarkError(RuntimeError):
    """The chat did not answer as the benchmark expects."""


def measure(stack: BenchStack, requests: int = REQUESTS) -> dict[str, Any]:
    stack.fresh_broker()  # no backlog from the benchmarks before
    stack.use_services(("intent", "workflow", "campaign"))
    url = stack.start_gateway(1, label="chat")
    return asyncio.run(_measure(stack, url, requests))


async def _measure(stack: BenchStack, url: str, requests: int) -> dict[str, Any]:
    conn = await asyncpg.connect(stack.endpoints.database_url)
    try:
        seeded = await seed(conn, candidates=CANDIDATES)
        await _campaign_of_the_bench_user(conn)
        await conn.execute("ANALYZE campaign.candidates")
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    results: dict[str, Any] = {
        "candidates": CANDIDATES,
        "seeded_now": not seeded.skipped,
        "requests_per_endpoint": requests,
        "warmup_requests": WARMUP,
        "messages": {},
    }
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
        for name, message in MESSAGES.items():
            results["messages"][name] = await _compare(api, name, message, requests)
    return results


async def _compare(
    api: httpx.AsyncClient, name: str, message: str, requests: int
) -> dict[str, Any]:
    first = await _post(api, "/api/ai-assistant/chat", {"message": message})
    if first["kind"] != EXPECTED_KIND[name]:
        raise BenchmarkError(f"{message!r}: the chat answered {first['kind']}: {first['text']}")
    chat_body = {"message": message, "conversation_id": first["conversation_id"]}
    intent_body = {"message": message, "conversation_id": f"bench-intent-{uuid.uuid4().hex}"}
    timings: dict[str, list[float]] = {"intent": [], "chat": []}
    for n in range(WARMUP + requests):
        for endpoint, body in (("intent", intent_body), ("chat", chat_body)):
            started = time.perf_counter()
            await _post(api, f"/api/ai-assistant/{endpoint}", body)
            if n >= WARMUP:
                timings[endpoint].append((time.perf_counter() - started) * 1000)
    figures = {endpoint: summary(values) for endpoint, values in timings.items()}
    return {
        "message": message,
        "answer": first["text"],
        **figures,
        "added_p50_ms": round(figures["chat"]["p50_ms"] - figures["intent"]["p50_ms"], 2),
        "added_p95_ms": round(figures["chat"]["p95_ms"] - figures["intent"]["p95_ms"], 2),
    }


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    if response.status_code != 200:
        raise BenchmarkError(f"POST {path}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def _campaign_of_the_bench_user(conn: asyncpg.Connection) -> None:
    """A campaign the status question finds: the bench user's only one."""
    job_id = await conn.fetchval("SELECT job_id FROM campaign.jobs ORDER BY title LIMIT 1")
    await conn.execute(
        "INSERT INTO campaign.campaigns (campaign_id, job_id, name, status, created_by)"
        " VALUES ($1, $2, 'Bench outreach', 'awaiting_review', 'bench')",
        uuid.uuid4(), job_id,
    )  # fmt: skip


def report(result: dict[str, Any]) -> None:
    print(
        f"\nchat vs intent endpoint: {result['candidates']:,} demo candidates, "
        f"{result['requests_per_endpoint']} requests per endpoint and message, one client"
    )
    print(f"  {'message':<8} {'endpoint':<8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, figures in result["messages"].items():
        for endpoint in ("intent", "chat"):
            f = figures[endpoint]
            print(
                f"  {name:<8} {endpoint:<8} {f['p50_ms']:>8.2f} {f['p95_ms']:>8.2f} "
                f"{f['p99_ms']:>8.2f}"
            )
        print(
            f"  {name:<8} {'added':<8} {figures['added_p50_ms']:>8.2f} "
            f"{figures['added_p95_ms']:>8.2f}"
        )


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    return write_document(RESULTS, "chat", 0, wrk_version, {"chat": result})
