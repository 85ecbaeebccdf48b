"""How fast the web app's review queue renders for a 1,000-draft campaign (issue 17: p95 under
300 ms on this machine).

The bench database gets the demo data (10,000 candidates) and a campaign awaiting review with
1,000 drafts. A signed-in Chromium (Debian's, driven by Playwright) opens the campaign's review
page again and again; one measurement is from the navigation's start until the page shows its
first draft, the queue's first page (50 drafts) and the progress (every request the page makes
before that: the HTML, its scripts, the campaign and the first page of drafts, through the real
gateway and campaign service). Also measured without a browser: the page's HTML alone, and the
API call for the first 50 drafts. Results: bench/results/web.json.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.cases import summary, write_document
from bench.stack import BenchStack
from services.campaign.seed import seed

log = logging.getLogger("bench.web")
RESULTS = Path(__file__).resolve().parent / "results" / "web.json"
DRAFTS = 1_000
RUNS = 50
WARMUP = 5
TARGET_P95_MS = 300.0
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
RENDERED = """() => document.querySelectorAll('#queue li').length >= 50
    && document.getElementById('draft-subject').value !== ''
    && document.getElementById('progress-label').textContent.startsWith('Reviewed')"""


class BenchmarkError(RuntimeError):
    """The page did not render as the benchmark expects."""


def measure(stack: BenchStack) -> dict[str, Any]:
    stack.fresh_broker()
    stack.use_services(("workflow", "campaign"))
    url = stack.start_gateway(1, label="web")
    return asyncio.run(_measure(stack, url))


async def _measure(stack: BenchStack, url: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright  # a dev dependency, like the browser tests

    conn = await asyncpg.connect(stack.endpoints.database_url)
    try:
        await seed(conn, candidates=10_000)
        campaign_id = await _campaign_with_drafts(conn, DRAFTS)
    finally:
        await conn.close()
    page_path = f"/app/campaigns/{campaign_id}/review"
    async with httpx.AsyncClient(base_url=url, timeout=30) as web:
        session = await _sign_in(web, stack.api_key)
        html = await _timed(lambda: web.get(page_path))
        drafts = await _timed(
            lambda: web.get(f"/api/campaigns/{campaign_id}/emails", params={"limit": 50})
        )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        await context.add_cookies([{"name": "rk_session", "value": session, "url": url}])
        page = await context.new_page()
        rendered: list[float] = []
        for n in range(WARMUP + RUNS):
            started = time.perf_counter()
            await page.goto(url + page_path)
            await page.wait_for_function(RENDERED, timeout=10_000)
            if n >= WARMUP:
                rendered.append((time.perf_counter() - started) * 1000)
        await browser.close()
    return {
        "drafts": DRAFTS,
        "runs": RUNS,
        "warmup_runs": WARMUP,
        "target_p95_ms": TARGET_P95_MS,
        "review_page_rendered": summary(rendered),
        "page_html": html,
        "first_50_drafts_api": drafts,
    }


async def _sign_in(web: httpx.AsyncClient, key: str) -> str:
    form = await web.get("/app/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if token is None:
        raise BenchmarkError("the sign-in page has no form token")
    answer = await web.post(
        "/app/sign-in", data={"csrf": token.group(1), "api_key": key, "next": "/app"}
    )
    session = answer.cookies.get("rk_session")
    if answer.status_code != 303 or not session:
        raise BenchmarkError(f"sign-in failed: {answer.status_code} {answer.text[:200]}")
    return session


async def _timed(call: Any) -> dict[str, float]:
    values = []
    for n in range(WARMUP + RUNS):
        started = time.perf_counter()
        response = await call()
        if response.status_code != 200:
            raise BenchmarkError(f"{response.request.url}: {response.status_code}")
        if n >= WARMUP:
            values.append((time.perf_counter() - started) * 1000)
    return summary(values)


async def _campaign_with_drafts(conn: asyncpg.Connection, drafts: int) -> uuid.UUID:
    """A campaign awaiting review, its recipients the first `drafts` demo candidates."""
    campaign_id = uuid.uuid4()
    async with conn.transaction():
        job_id = await conn.fetchval("SELECT job_id FROM campaign.jobs ORDER BY title LIMIT 1")
        await conn.execute(
            "INSERT INTO campaign.campaigns (campaign_id, job_id, name, status, created_by)"
            " VALUES ($1, $2, 'Bench review', 'awaiting_review', 'bench')",
            campaign_id, job_id,
        )  # fmt: skip
        people = await conn.fetch(
            "SELECT candidate_id, email, full_name FROM campaign.candidates"
            " ORDER BY candidate_id LIMIT $1",
            drafts,
        )
        await conn.executemany(
            "INSERT INTO campaign.recipients (campaign_id, candidate_id, rank, matched_skills)"
            " VALUES ($1, $2, $3, '{}')",
            [(campaign_id, p["candidate_id"], rank) for rank, p in enumerate(people, start=1)],
        )
        await conn.executemany(
            "INSERT INTO campaign.emails (campaign_id, job_id, candidate_id, to_address, subject,"
            " body, status) VALUES ($1, $2, $3, $4, $5, $6, 'drafted')",
            [
                (campaign_id, job_id, p["candidate_id"], p["email"], "A role for you",
                 f"Hi {p['full_name']},\n\n" + "We are hiring. " * 40)
                for p in people
            ],
        )  # fmt: skip
    return campaign_id


def report(result: dict[str, Any]) -> None:
    shown = result["review_page_rendered"]
    met = "met" if shown["p95_ms"] < result["target_p95_ms"] else "NOT MET"
    print(
        f"\nreview queue, {result['drafts']:,} drafts, {result['runs']} loads in Chromium: "
        f"rendered p50 {shown['p50_ms']} ms, p95 {shown['p95_ms']} ms "
        f"(target p95 < {result['target_p95_ms']:.0f} ms: {met}); page HTML p50 "
        f"{result['page_html']['p50_ms']} ms; first 50 drafts from the API p50 "
        f"{result['first_50_drafts_api']['p50_ms']} ms, p95 "
        f"{result['first_50_drafts_api']['p95_ms']} ms"
    )


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    return write_document(RESULTS, "web", 0, wrk_version, {"web": result})
