"""`POST /api/ai-assistant/inference` (simple mode), against issue 4's targets.

The model is a fake OpenAI-compatible server (tests.support.fake_llm) in a thread of this process;
the gateway and the inference service reach it over HTTP through the `openai` SDK, as they would
a real one (OPENAI_BASE_URL, OPENAI_API_KEY=bench, LLM_MODEL=bench-model, a one-hour cache TTL).

Cache hits: 16 distinct questions (tagged with this run's id, so no answer cached by an earlier
run or by anyone else can be served) are asked once each, which fills the cache; then wrk POSTs
them in turn with 1 connection and with 32, after a warm-up, in two set-ups:

- `gateway`: GATEWAY_SERVES_CACHE_HITS=true (the default), the gateway answers a hit from Redis
  itself: HTTP -> gateway -> Redis -> gateway;
- `inference via Kafka`: GATEWAY_SERVES_CACHE_HITS=false, every request goes gateway -> Kafka
  (inference.commands) -> inference service -> Redis -> Kafka (the gateway's reply topic).

Every answer must be a hit: the fake model server must receive no call during a run, and every
reply must be a 2xx that says `"cached":true`.

Miss overhead: the fake model answers after a fixed 50 ms. Three kinds of request, interleaved, one
at a time from one client (after a few unmeasured ones): the model server called directly with the
`openai` SDK (the same messages the product sends, system prompt included); the gateway with
`"cache": "bypass"` (no read, no write: Kafka, the inference service, the model call and its
token-accounting row in PostgreSQL); and the gateway with a question never asked before and the
default cache mode (a real miss, which adds the cache look-ups, the single-flight lock and the
write). The added latency is each product path's p50 less the direct call's.

Results: bench/results/inference.json. Targets (issue 4, this 2-core machine): cache hits with
1 client p50 < 2 ms and p99 < 5 ms; with 32 clients at least 1,000 hits/s. They are judged on
the `gateway` set-up (the product's default); the other is shown beside it for comparison.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import redis

from bench import cpu, wrk
from bench.cases import (
    Row,
    _render,
    cpu_table,
    latency_cells,
    measured_run,
    summary,
    write_document,
)
from bench.stack import BenchStack
from bench.targets import Target, print_verdicts
from services.inference.domain.prompt import chat_messages
from shared.contracts.inference import ChatMessage, ModelRequest
from shared.settings import Settings
from tests.support.fake_llm import Behaviour, FakeLLM

log = logging.getLogger("bench.inference")
RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"
INFERENCE = "/api/ai-assistant/inference"
SERVICES = ("inference",)  # the only ones running during this benchmark
MODEL = "bench-model"
CACHE_TTL_SECONDS = 3600
CLIENTS = ((1, 1), (32, 2))  # (connections, wrk threads)
MISS_REQUESTS = 100
MISS_WARMUP = 10
MISS_MODEL_DELAY = 0.05  # seconds the fake model takes to answer, in the miss runs
GATEWAY = "gateway"
VIA_KAFKA = "inference via Kafka"

QUESTIONS = [
    "What questions should I ask a senior backend engineer in a technical interview?",
    "How do I write a good rejection email to a candidate?",
    "What is a good reply rate for recruiting outreach emails?",
    "How long should a take-home coding assignment be?",
    "How do I source data engineers on GitHub?",
    "What should a job description for a staff platform engineer include?",
    "How can I reduce time to hire for engineering roles?",
    "What is a fair salary range for a senior Python developer in Berlin?",
    "How do I follow up with a candidate who has not replied?",
    "Which interview questions reveal system design skills?",
    "How should I structure a phone screen for a frontend developer?",
    "What are good boolean search strings for finding Kubernetes engineers?",
    "How do I make outreach emails less generic?",
    "What should I tell a candidate who asks about remote work?",
    "How many interview rounds are reasonable for a mid-level engineer?",
    "How do I assess culture fit without bias?",
]


class InferenceCheckError(RuntimeError):
    """The endpoint did not answer as the benchmark needs (not a 200, or not the expected hit or
    miss), so its numbers would not measure what they claim to."""


@dataclass
class Measured:
    rows: list[Row] = field(default_factory=list)
    warmed: dict[str, Any] = field(default_factory=dict)
    misses: dict[str, Any] = field(default_factory=dict)


def model_env(fake: FakeLLM) -> dict[str, str]:
    """The model settings the gateway and the inference service get."""
    return {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "bench",
        "LLM_MODEL": MODEL,
        "LLM_CACHE_TTL_SECONDS": str(CACHE_TTL_SECONDS),
    }


def _served_by(row: Row) -> str:
    return str(row.extra["hits_served_by"])


# -- measuring ------------------------------------------------------------------------------------


def measure(stack: BenchStack, directory: Path, seconds: int) -> Measured:
    """Start the fake model server, run the inference service alone with the model settings,
    and measure; the fake server is stopped and this run's answers deleted from Redis after."""
    with FakeLLM() as fake:
        log.info("fake model server at %s", fake.base_url)
        return _measure(stack, fake, directory, seconds)


def _measure(stack: BenchStack, fake: FakeLLM, directory: Path, seconds: int) -> Measured:
    tag = uuid.uuid4().hex[:8]
    questions = [f"{q} (bench {tag})" for q in QUESTIONS]
    script = wrk.write_bodies_script(
        directory, stack.api_key, [{"message": q} for q in questions], "inference"
    )
    settings = Settings(redis_url=stack.endpoints.redis_url, **_settings_overrides())
    keys = [_cache_key(q, settings) for q in questions]
    miss_keys: list[str] = []
    measured = Measured()
    stack.fresh_broker()
    stack.use_services(SERVICES, model_env(fake))
    try:
        # Kafka first, so the gateway that serves hits itself (the default) is the one left
        # running for the miss runs.
        for serves, label in ((False, VIA_KAFKA), (True, GATEWAY)):
            env = {**model_env(fake), "GATEWAY_SERVES_CACHE_HITS": "true" if serves else "false"}
            name = "hits" if serves else "no-hits"
            url = stack.start_gateway(1, env=env, label=name)
            log.info("gateway ready at %s, GATEWAY_SERVES_CACHE_HITS=%s", url, serves)
            if not measured.warmed:
                measured.warmed = _warm(url, stack.api_key, fake, questions, keys, settings)
            else:
                _check_hits(url, stack.api_key, fake, questions)
            log.info("warming up POST %s for %d s", INFERENCE, wrk.WARMUP_SECONDS)
            wrk.warm_up(url + INFERENCE, script)
            for connections, threads in CLIENTS:
                measured.rows.append(
                    _hit_run(stack, fake, url, script, label, serves, connections, threads, seconds)
                )
        measured.misses = _misses(stack, fake, url, tag, settings, miss_keys)
    finally:
        fake.always(Behaviour())
        _forget(settings, keys + miss_keys)
    order = {GATEWAY: 0, VIA_KAFKA: 1}
    measured.rows.sort(key=lambda r: (order[_served_by(r)], r.connections))
    return measured


def _settings_overrides() -> dict[str, Any]:
    return {"llm_model": MODEL, "openai_base_url": "http://unused", "openai_api_key": "bench"}


def _cache_key(question: str, settings: Settings) -> str:
    """The key the product caches `{"message": question}` under (default temperature and
    max_tokens, as the children read them from the same environment)."""
    conversation = [ChatMessage(role="user", content=question)]
    request = ModelRequest.build(
        conversation, MODEL, settings.llm_temperature, settings.llm_max_tokens
    )
    return request.cache_key()


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=5)


def _warm(
    url: str,
    api_key: str,
    fake: FakeLLM,
    questions: list[str],
    keys: list[str],
    settings: Settings,
) -> dict[str, Any]:
    """Ask each question once: each must be a miss answered by the model, and be cached."""
    before = len(fake.calls)
    _ask_each(url, api_key, questions, False, "was a hit before it was ever asked")
    calls = len(fake.calls) - before
    cache = _redis(settings)
    try:
        in_cache = int(cache.exists(*keys))
        ttl = int(cache.ttl(keys[0]))
    finally:
        cache.close()
    if calls != len(questions) or in_cache != len(questions):
        raise InferenceCheckError(
            f"warming the cache with {len(questions)} questions made {calls} model call(s) and "
            f"left {in_cache} of them in Redis"
        )
    log.info("cache warmed: %d questions, %d model calls, TTL %d s", len(questions), calls, ttl)
    return {"questions": len(questions), "model_calls": calls, "cached": in_cache, "ttl_s": ttl}


def _check_hits(url: str, api_key: str, fake: FakeLLM, questions: list[str]) -> None:
    before = len(fake.calls)
    _ask_each(url, api_key, questions, True, "was not a hit after the warm-up")
    if len(fake.calls) != before:
        raise InferenceCheckError("the model server was called for an answer already cached")


def _ask_each(url: str, api_key: str, questions: list[str], cached: bool, otherwise: str) -> None:
    """Ask each question in turn: each must get a 200 that is a hit if `cached`, else a miss
    (the first that is not raises, `otherwise` saying what it was)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        for question in questions:
            if bool(_post(client, {"message": question})["cached"]) is not cached:
                raise InferenceCheckError(f"{question!r} {otherwise}")


def _post(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(INFERENCE, json=body)
    if response.status_code != 200:
        raise InferenceCheckError(
            f"POST {INFERENCE} {body}: HTTP {response.status_code}: {response.text[:300]}"
        )
    reply: dict[str, Any] = response.json()
    return reply


def _hit_run(
    stack: BenchStack,
    fake: FakeLLM,
    url: str,
    script: Path,
    label: str,
    serves: bool,
    connections: int,
    threads: int,
    seconds: int,
) -> Row:
    what = (INFERENCE, label, connections, threads, seconds)
    log.info("wrk POST %s (hits served by %s): %d connection(s), %d thread(s), %d s", *what)
    calls_before = len(fake.calls)
    result, shares = measured_run(
        stack, url + INFERENCE, script, connections=connections, threads=threads, seconds=seconds
    )
    model_calls = len(fake.calls) - calls_before
    all_hits = (
        model_calls == 0
        and result.non_2xx == 0
        and result.socket_errors == 0
        and result.cached_replies == result.requests
        and result.requests > 0
    )
    if not all_hits:
        log.warning(
            "not every answer was a hit: %d model call(s), %s non-2xx, %s cached of %d",
            model_calls,
            result.non_2xx,
            result.cached_replies,
            result.requests,
        )
    extra = {
        "hits_served_by": label,
        "gateway_serves_cache_hits": serves,
        "model_calls_during_run": model_calls,
        "all_hits": all_hits,
    }
    return Row("POST", INFERENCE, 1, connections, threads, result, shares, extra)


def _misses(
    stack: BenchStack,
    fake: FakeLLM,
    url: str,
    tag: str,
    settings: Settings,
    miss_keys: list[str],
) -> dict[str, Any]:
    log.info(
        "misses: %d requests of each kind, one at a time, the model answering after %.0f ms",
        MISS_REQUESTS,
        MISS_MODEL_DELAY * 1000,
    )
    fake.always(Behaviour(kind="slow", delay=MISS_MODEL_DELAY))
    sampler = cpu.Sampler(stack.process_roots(), stack.database)
    sampler.start()
    calls_before = len(fake.calls)
    started = time.monotonic()
    series = asyncio.run(_miss_series(url, stack.api_key, fake.base_url, tag, settings, miss_keys))
    wall = time.monotonic() - started
    shares = sampler.stop()
    model_calls = len(fake.calls) - calls_before
    expected = 3 * (MISS_REQUESTS + MISS_WARMUP)
    if model_calls != expected:
        raise InferenceCheckError(
            f"the miss runs made {model_calls} model calls; expected {expected} (one per request)"
        )
    direct = summary(series["direct"])
    result: dict[str, Any] = {
        "requests_per_kind": MISS_REQUESTS,
        "unmeasured_first": MISS_WARMUP,
        "model_delay_ms": MISS_MODEL_DELAY * 1000,
        "model_calls": model_calls,
        "seconds": round(wall, 1),
        "cpu_percent_of_one_core": shares,
        "direct": direct,
    }
    for kind in ("bypass", "miss"):
        stats = summary(series[kind])
        stats["added_p50_ms"] = round(stats["p50_ms"] - direct["p50_ms"], 3)
        stats["added_p99_ms"] = round(stats["p99_ms"] - direct["p99_ms"], 3)
        stats["gateway_reported_p50_ms"] = round(statistics.median(series[f"{kind}_reported"]), 3)
        result[kind] = stats
    return result


async def _miss_series(
    url: str,
    api_key: str,
    model_url: str,
    tag: str,
    settings: Settings,
    miss_keys: list[str],
) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {
        k: [] for k in ("direct", "bypass", "miss", "bypass_reported", "miss_reported")
    }
    headers = {"Authorization": f"Bearer {api_key}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0) as http,
        openai.AsyncOpenAI(base_url=model_url, api_key="bench", max_retries=0) as sdk,
    ):

        async def direct(question: str) -> float:
            request = ModelRequest.build(
                [ChatMessage(role="user", content=question)],
                MODEL,
                settings.llm_temperature,
                settings.llm_max_tokens,
            )
            started = time.perf_counter()
            await sdk.chat.completions.create(
                model=MODEL,
                messages=chat_messages(request),  # type: ignore[arg-type]
                temperature=request.temperature,
                max_tokens=request.max_tokens,
            )
            return (time.perf_counter() - started) * 1000

        async def product(body: dict[str, Any]) -> tuple[float, float]:
            started = time.perf_counter()
            response = await http.post(INFERENCE, json=body)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or response.json()["cached"]:
                raise InferenceCheckError(
                    f"POST {INFERENCE} {body}: expected a 200 miss, got HTTP "
                    f"{response.status_code}: {response.text[:300]}"
                )
            return elapsed, float(response.json()["latency_ms"])

        kinds: dict[str, Callable[[int], Any]] = {
            "direct": lambda i: direct(f"Direct question {i} (bench {tag})"),
            "bypass": lambda i: product(
                {"message": f"Bypass question {i} (bench {tag})", "cache": "bypass"}
            ),
            "miss": lambda i: product({"message": f"New question {i} (bench {tag})"}),
        }
        for i in range(MISS_WARMUP + MISS_REQUESTS):
            miss_keys.append(_cache_key(f"New question {i} (bench {tag})", settings))
            for kind, call in kinds.items():
                value = await call(i)
                if i < MISS_WARMUP:
                    continue
                if kind == "direct":
                    series[kind].append(value)
                else:
                    series[kind].append(value[0])
                    series[f"{kind}_reported"].append(value[1])
    return series


def _forget(settings: Settings, keys: list[str]) -> None:
    """Delete this run's answers from the shared Redis (best effort)."""
    if not keys:
        return
    client = _redis(settings)
    try:
        deleted = client.delete(*keys)
        log.info("deleted %d cached answer(s) of this run from Redis", deleted)
    except redis.RedisError as exc:
        log.warning("could not delete this run's cached answers: %s", exc)
    finally:
        client.close()


# -- judging and reporting ------------------------------------------------------------------------


TARGETS = [
    Target("1 client: p50 < 2 ms", 1, lambda r: r.p50_ms < 2, lambda r: f"{r.p50_ms:.2f} ms"),
    Target("1 client: p99 < 5 ms", 1, lambda r: r.p99_ms < 5, lambda r: f"{r.p99_ms:.2f} ms"),
    Target(
        "32 clients: >= 1,000 hits/s",
        32,
        lambda r: r.rps >= 1000,
        lambda r: f"{r.rps:,.0f} hits/s",
    ),
]


def verdicts(rows: list[Row], served_by: str = GATEWAY) -> list[dict[str, Any]]:
    by_clients = {r.connections: r for r in rows if _served_by(r) == served_by}
    found = []
    for target in TARGETS:
        row = by_clients.get(target.connections)
        if row is not None:
            found.append(target.verdict(row.result, bool(row.extra["all_hits"])))
    if by_clients:
        rows_ok = [r for r in by_clients.values() if r.extra["all_hits"]]
        found.append(
            {
                "target": "every answer a cache hit",
                "measured": f"{len(rows_ok)} of {len(by_clients)} runs: no model call, "
                "every reply 2xx and cached",
                "met": len(rows_ok) == len(by_clients),
            }
        )
    return found


def hits_table(rows: list[Row]) -> str:
    header = (
        "hits served by",
        "clients",
        "hits/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "requests",
        "cached",
        "non-2xx",
        "model calls",
    )
    return _render(
        [header]
        + [
            (
                _served_by(r),
                str(r.connections),
                *latency_cells(r.result),
                f"{r.result.max_ms:.2f}",
                str(r.result.requests),
                str(r.result.cached_replies),
                str(r.result.errors),
                str(r.extra["model_calls_during_run"]),
            )
            for r in rows
        ]
    )


def misses_table(misses: dict[str, Any]) -> str:
    header = ("1 client, sequential", "p50 ms", "p99 ms", "mean ms", "added p50", "added p99")
    names = {
        "direct": "model server, openai SDK",
        "bypass": 'gateway, "cache": "bypass"',
        "miss": "gateway, new question",
    }
    lines = [header]
    for kind, name in names.items():
        s = misses[kind]
        added = (
            (f"{s['added_p50_ms']:.2f}", f"{s['added_p99_ms']:.2f}")
            if kind != "direct"
            else ("", "")
        )
        lines.append(
            (name, f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['mean_ms']:.2f}", *added)
        )
    return _render(lines)


def _ratio(rows: list[Row], connections: int) -> str | None:
    by = {_served_by(r): r.result for r in rows if r.connections == connections}
    if GATEWAY not in by or VIA_KAFKA not in by:
        return None
    g, k = by[GATEWAY], by[VIA_KAFKA]
    if connections == 1:
        return (
            f"1 client: serving hits in the gateway saves {k.p50_ms - g.p50_ms:.2f} ms at p50 "
            f"({g.p50_ms:.2f} vs {k.p50_ms:.2f}) and {k.p99_ms - g.p99_ms:.2f} ms at p99"
        )
    return (
        f"{connections} clients: {g.rps:,.0f} vs {k.rps:,.0f} hits/s "
        f"({g.rps / k.rps:.1f}x with the gateway serving hits)"
        if k.rps
        else None
    )


def report(measured: Measured) -> None:
    rows = measured.rows
    print(f"\nPOST {INFERENCE}, cache hits (gateway on 1 worker, {len(QUESTIONS)} questions):")
    print(hits_table(rows))
    for connections, _ in CLIENTS:
        line = _ratio(rows, connections)
        if line:
            print(f"  {line}")
    print("\nCPU during each cache-hit run, % of one core (200 = both cores busy):")
    print(cpu_table(rows, label=_served_by, heading="hits served by"))
    misses = measured.misses
    if misses:
        print(
            f"\nmisses: the model answers after {misses['model_delay_ms']:.0f} ms; "
            f"{misses['requests_per_kind']} requests of each kind, interleaved, 1 client:"
        )
        print(misses_table(misses))
        print(
            f"  the product adds {misses['bypass']['added_p50_ms']:.2f} ms at p50 to a model call "
            f"with the cache bypassed, {misses['miss']['added_p50_ms']:.2f} ms on a real miss "
            f"(the gateway's own latency_ms, p50: {misses['bypass']['gateway_reported_p50_ms']:.2f}"
            f" and {misses['miss']['gateway_reported_p50_ms']:.2f} ms)"
        )
        shares = misses["cpu_percent_of_one_core"]
        busy = ", ".join(f"{k} {v:.0f}" for k, v in shares.items() if k != "idle")
        print(
            f"  CPU during the miss runs, % of one core: {busy}; idle {shares.get('idle', 0):.0f}"
        )
    print("\nissue 4 targets (cache hits served by the gateway, GATEWAY_SERVES_CACHE_HITS=true):")
    print_verdicts(verdicts(rows, GATEWAY))
    print("the same targets with GATEWAY_SERVES_CACHE_HITS=false (for comparison):")
    print_verdicts(verdicts(rows, VIA_KAFKA))


def write_results(measured: Measured, seconds: int, wrk_version: str) -> Path:
    benchmark = (
        f"POST {INFERENCE}: cache hits served by the gateway from Redis, or by the "
        "inference service through Kafka; and the added latency of a miss over calling the model "
        "server directly (python -m bench)"
    )
    document = {
        "model": {"server": "tests.support.fake_llm.FakeLLM (in the bench process)", "name": MODEL},
        "warm_up": measured.warmed,
        "targets": verdicts(measured.rows, GATEWAY),
        "targets_with_hits_via_kafka": verdicts(measured.rows, VIA_KAFKA),
        "cache_hits": [row.as_dict() for row in measured.rows],
        "misses": measured.misses,
    }
    return write_document(RESULTS, benchmark, seconds, wrk_version, document, ensure_ascii=False)
