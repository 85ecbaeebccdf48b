"""A 1,000-recipient email campaign in template mode, end to end, against a local SMTP sink.

1,000 matching candidates and a job are seeded into the bench database; the run is started with
`POST /api/workflows` (type email_campaign) and goes through the workflow service and the campaign
service: extract candidates, generate drafts (template mode: no model), await review. All drafts
are approved with the review API (`POST /api/campaigns/{id}/approve-all`: one transaction, 1,000
`email.approved` events through the outbox), and the campaign service sends them over SMTP to an
aiosmtpd sink in this process, rate limits off (SEND_RATE_PER_SECOND=0,
CAMPAIGN_SEND_RATE_PER_SECOND=0, no sending window, daily cap or spacing), until the run hears
`sending_finished` and starts monitoring.

After the campaign, a bare aiosmtplib loop (bench/smtp_loop.py, its own process) sends the same
emails again, built by the same message builder, into the same sink over as many connections: no
database, no outbox, no pacing. The product's send rate is reported as a share of its rate
(`share_of_bare_loop`).

Reported: the time of each stage (extract and generate from the step history; approve-all as the
HTTP call; send from the approval to the last email recorded sent), the send rate (emails per
second, first to last send), and how many messages the sink received. Results:
bench/results/campaign.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.cases import write_document
from bench.stack import BenchStack, free_port, tail

log = logging.getLogger("bench.campaign")
RESULTS = Path(__file__).resolve().parent / "results" / "campaign.json"
RECIPIENTS = 1_000
SMTP_CONNECTIONS = 8
TIMEOUT = 600.0
APPROVE_TIMEOUT = 30.0
SKILL = "benchlang"
TITLE = "Bench Backend Engineer"


class BenchmarkError(RuntimeError):
    """The campaign did not get through in time, or lost or duplicated email."""


class _Sink:
    """aiosmtpd's DATA hook: count messages and recipients, keep nothing else."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages = 0
        self.recipients: dict[str, int] = {}

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.lock:
            self.messages += 1
            for rcpt in envelope.rcpt_tos:
                self.recipients[rcpt] = self.recipients.get(rcpt, 0) + 1
        return "250 2.0.0 OK"


def measure(stack: BenchStack, recipients: int = RECIPIENTS) -> dict[str, Any]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        stack.fresh_broker()
        stack.use_services(
            ("workflow", "campaign"),
            {
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(port),
                "SMTP_POOL_SIZE": str(SMTP_CONNECTIONS),
                "SEND_RATE_PER_SECOND": "0",
                "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
                "SEND_WINDOW_DAYS": "always",
                "SEND_DAILY_CAP": "0",
                "SEND_SPACING_SECONDS": "0",
                "CAMPAIGN_EXTRACTION_MAX_LIMIT": str(recipients),
            },
        )
        # approve-all answers after its one transaction over every draft: allow it more than 5 s
        url = stack.start_gateway(1, {"REQUEST_TIMEOUT_SECONDS": "120"}, label="campaign")
        result = asyncio.run(_measure(stack, url, sink, recipients))
        bare = bare_loop(port, stack.endpoints.database_url, result["campaign_id"], sink)
    finally:
        controller.stop()
    result["bare_loop"] = bare
    result["share_of_bare_loop"] = round(result["emails_per_second"] / bare["emails_per_second"], 3)
    return result


def bare_loop(port: int, database_url: str, campaign_id: str, sink: _Sink) -> dict[str, Any]:
    """The bare aiosmtplib loop (bench/smtp_loop.py) over the campaign's own emails, into the
    same sink, in its own process: once building each message, once with them built before."""
    with sink.lock:
        sink.messages = 0
        sink.recipients.clear()
    argv = ["bench.smtp_loop", str(port), str(SMTP_CONNECTIONS), database_url, campaign_id]
    done = subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"the bare SMTP loop failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if sink.messages != 2 * result["emails"]:
        raise BenchmarkError(
            f"the bare SMTP loop sent {sink.messages} messages for 2 x {result['emails']}"
        )
    return result


async def _measure(stack: BenchStack, url: str, sink: _Sink, recipients: int) -> dict[str, Any]:
    pool = await asyncpg.create_pool(stack.endpoints.database_url, min_size=1, max_size=4)
    assert pool is not None
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    try:
        await _seed(pool, recipients)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
            slots = {
                "skills": [SKILL],
                "job_title": TITLE,
                "location": "Berlin",
                "limit": recipients,
            }
            started = time.perf_counter()
            response = await api.post(
                "/api/workflows", json={"type": "email_campaign", "params": {"slots": slots}}
            )
            if response.status_code != 201:
                raise BenchmarkError(f"POST /api/workflows: {response.status_code} {response.text}")
            run_id = uuid.UUID(response.json()["run_id"])
            run = await _wait_run(api, run_id, lambda r: r["state"] != "extract_candidates"
                                  and r["state"] != "generate_drafts")  # fmt: skip
            if run["state"] != "await_review":
                raise BenchmarkError(f"the run stopped at {run['state']}: {run.get('error')}")
            drafted_at = time.perf_counter()
            log.info("%d drafts in %.1f s; approving all", recipients, drafted_at - started)

            approve_started = time.perf_counter()
            # Timed by the database (no draft left), not by the call: the call answers with every
            # decided email, which can take longer than the approval or fail on its own.
            approving = asyncio.create_task(_approve_all(api, run_id))
            await _wait_left(pool, run_id, ("drafted",), sink)
            approved_at = time.perf_counter()
            await _wait_left(pool, run_id, ("drafted", "approved", "sending"), sink)
            sent_at = time.perf_counter()
            run = await _wait_run(api, run_id, lambda r: r["state"] not in ("await_review",
                                  "await_sending"))  # fmt: skip
            finished_at = time.perf_counter()
            approve_error = await approving
            if approve_error:
                log.warning("approve-all: %s; the drafts were approved all the same", approve_error)
                log.warning("campaign log:\n%s", tail(stack.log_dir / "campaign.log", 5))
        steps = {
            row["state"]: row["seconds"]
            for row in await pool.fetch(
                "SELECT state, extract(epoch FROM completed_at - requested_at)::float8 AS seconds"
                " FROM workflow.steps WHERE run_id = $1 AND status = 'succeeded'",
                run_id,
            )
        }
        sends = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'sent') AS sent,"
            " count(*) FILTER (WHERE status <> 'sent') AS not_sent,"
            " extract(epoch FROM max(sent_at) - min(sent_at))::float8 AS spread"
            " FROM campaign.emails WHERE campaign_id = $1",
            run_id,
        )
        assert sends is not None
    finally:
        await pool.close()
    duplicates = sum(1 for n in sink.recipients.values() if n > 1)
    if duplicates or sink.messages != recipients:
        raise BenchmarkError(
            f"the sink received {sink.messages} messages for {recipients} recipients, "
            f"{duplicates} addresses more than once"
        )
    send_seconds = sent_at - approved_at
    spread = sends["spread"] or 0.0
    return {
        "recipients": recipients,
        "mode": "template",
        "approved_with": "POST /api/campaigns/{id}/approve-all",
        "approve_all_error": approve_error,
        "smtp_connections": SMTP_CONNECTIONS,
        "rate_limits": "off",
        "stages_seconds": {
            "extract_candidates": round(steps.get("extract_candidates", 0.0), 3),
            "generate_drafts": round(steps.get("generate_drafts", 0.0), 3),
            "start_to_await_review": round(drafted_at - started, 3),
            "approve_all": round(approved_at - approve_started, 3),
            "send": round(send_seconds, 3),
            "sending_finished_to_monitoring": round(finished_at - sent_at, 3),
            "end_to_end": round(finished_at - started, 3),
        },
        "sent": sends["sent"],
        "not_sent": sends["not_sent"],
        "sink_messages": sink.messages,
        "emails_per_second": round(recipients / send_seconds, 1),
        "emails_per_second_first_to_last_send": round(recipients / spread, 1) if spread else None,
        "final_state": run["state"],
        "campaign_id": str(run_id),
    }


async def _seed(pool: asyncpg.Pool, recipients: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO campaign.jobs (title, city, country, skills, source)"
            " VALUES ($1, 'Berlin', 'DE', $2, 'bench')",
            TITLE,
            [SKILL, "postgresql"],
        )
        columns = ["full_name", "first_name", "email", "city", "country", "seniority"]
        columns += ["years_experience", "skills", "source", "found_via"]
        records = [
            (f"Bench Candidate {i}", f"Cand{i}", f"candidate{i}@bench.example", "Berlin", "DE",
             "senior", i % 30, [SKILL, "postgresql"] if i % 2 else [SKILL], "bench", "the bench")
            for i in range(recipients)
        ]  # fmt: skip
        await conn.copy_records_to_table(
            "candidates", schema_name="campaign", columns=columns, records=records
        )


async def _wait_run(api: httpx.AsyncClient, run_id: uuid.UUID, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        response = await api.get(f"/api/workflows/{run_id}")
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        if done(run) or run["status"] in ("failed", "cancelled", "expired", "succeeded"):
            return run
        if time.monotonic() > deadline:
            raise BenchmarkError(f"run {run_id} stayed at {run['state']}")
        await asyncio.sleep(0.05)


async def _approve_all(api: httpx.AsyncClient, run_id: uuid.UUID) -> str | None:
    """Approve every draft with the review API; None, or what went wrong with the call."""
    try:
        response = await api.post(f"/api/campaigns/{run_id}/approve-all", timeout=APPROVE_TIMEOUT)
    except httpx.TimeoutException:
        return f"no answer within {APPROVE_TIMEOUT:.0f} s"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    return None


async def _wait_left(
    pool: asyncpg.Pool, run_id: uuid.UUID, statuses: tuple[str, ...], sink: _Sink
) -> None:
    """Until no email of the campaign has one of `statuses`."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        left = await pool.fetchval(
            "SELECT count(*) FROM campaign.emails WHERE campaign_id = $1"
            " AND status = ANY($2::text[])",
            run_id,
            list(statuses),
        )
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise BenchmarkError(
                f"{left} emails still {'/'.join(statuses)} after {TIMEOUT:.0f} s "
                f"({sink.messages} received)"
            )
        await asyncio.sleep(0.05)


def report(result: dict[str, Any]) -> None:
    stages = result["stages_seconds"]
    print(
        f"\nemail campaign: {result['recipients']} recipients, template mode, rate limits off, "
        f"{result['smtp_connections']} SMTP connections to a local aiosmtpd sink\n"
        f"  extract candidates {stages['extract_candidates']:.2f} s, generate drafts "
        f"{stages['generate_drafts']:.2f} s (start to await_review "
        f"{stages['start_to_await_review']:.2f} s)\n"
        f"  approve all (review API) {stages['approve_all']:.2f} s\n"
        f"  send {stages['send']:.2f} s: {result['emails_per_second']:.0f} emails/s from the "
        f"approval ({result['emails_per_second_first_to_last_send']} first to last send); "
        f"{result['sent']} sent, {result['sink_messages']} received by the sink\n"
        f"  a bare aiosmtplib loop over the same emails into the same sink "
        f"({result['smtp_connections']} connections, bench/smtp_loop.py): "
        f"{result['bare_loop']['emails_per_second']:.0f} emails/s building each message "
        f"({result['bare_loop']['transport_only_emails_per_second']:.0f} with them built "
        f"before); the product sends at {result['share_of_bare_loop']:.0%} of it\n"
        f"  sending_finished to monitoring {stages['sending_finished_to_monitoring']:.2f} s; "
        f"end to end {stages['end_to_end']:.1f} s; the run is at {result['final_state']}"
    )


def write_results(result: dict[str, Any], wrk_version: str) -> Path:
    document = {"campaign": result}
    seconds = int(result["stages_seconds"]["end_to_end"])
    return write_document(RESULTS, "campaign", seconds, wrk_version, document)
