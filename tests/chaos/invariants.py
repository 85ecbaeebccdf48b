"""What must hold after the chaos: each a query or a count that returns what breaks it, so the
test can print every finding and assert them empty."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from services.campaign.domain.sending import OUTCOME_UNKNOWN
from shared import deadletters
from shared.settings import Settings
from tests.chaos.workload import Campaigns
from tests.support.smtp import SmtpTestServer

FINISHED = ("succeeded", "failed", "cancelled", "expired")
UNFINISHED_EMAIL = ("approved", "sending", "waiting")  # still to be sent


@dataclass
class Emails:
    """The two campaigns' emails against what the SMTP server accepted."""

    accepted: int  # messages the SMTP server accepted for them
    expected: int  # emails that had to be accepted exactly once
    duplicates: list[str] = field(default_factory=list)  # Message-IDs accepted more than once
    lost: list[str] = field(default_factory=list)  # expected, never accepted: "<id> <status>"
    unknown_outcome: list[str] = field(default_factory=list)  # lost, recorded "outcome unknown"
    forbidden: list[str] = field(default_factory=list)  # rejected or cancelled, yet accepted
    strangers: list[str] = field(default_factory=list)  # accepted, but no such email


async def check_emails(db: asyncpg.Pool, smtp: SmtpTestServer, campaigns: Campaigns) -> Emails:
    """Every email of an approved recipient of the main campaign (the first and the follow-up)
    and every email the cancelled one had sent by then is accepted once; none that was rejected
    or cancelled is."""
    rows = await db.fetch(
        "SELECT e.email_id, e.campaign_id, e.step, e.status, e.message_id, e.last_error,"
        " first.status AS first_status"
        " FROM campaign.emails e JOIN campaign.emails first"
        "   ON first.campaign_id = e.campaign_id AND first.candidate_id = e.candidate_id"
        "   AND first.step = 0"
        " WHERE e.campaign_id = ANY($1::uuid[])",
        [campaigns.main, campaigns.cancelled],
    )
    ids = [m.message["Message-ID"] for m in smtp.messages]
    times = Counter(str(mid) for mid in ids)
    ours = {row["message_id"]: row for row in rows}
    found = Emails(accepted=len(ids), expected=0)
    found.duplicates = sorted(mid for mid, count in times.items() if count > 1)
    found.strangers = sorted(mid for mid in times if mid not in ours)
    for row in rows:
        name = f"{row['message_id']} step {row['step']} {row['status']}"
        unknown = row["status"] == "failed" and row["last_error"] == OUTCOME_UNKNOWN
        if row["campaign_id"] == campaigns.main:
            must = row["first_status"] != "rejected"
        elif unknown:  # killed mid-send while the campaign was still sending: either is right
            continue
        else:
            must = row["status"] == "sent"
        if must:
            found.expected += 1
            if row["message_id"] not in times:
                (found.unknown_outcome if unknown else found.lost).append(name)
        elif row["message_id"] in times:
            found.forbidden.append(name)
    return found


async def unsent(db: asyncpg.Pool, campaigns: Campaigns) -> int:
    """Emails of the two campaigns still to be sent (or mid-send)."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM campaign.emails e WHERE e.campaign_id = ANY($1::uuid[])"
        " AND e.status = ANY($2::text[])",
        [campaigns.main, campaigns.cancelled],
        list(UNFINISHED_EMAIL),
    )
    return count


async def unsettled_runs(db: asyncpg.Pool) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM workflow.runs WHERE status <> ALL($1::text[])",
        [*FINISHED, "waiting"],
    )
    return count


async def check_runs(db: asyncpg.Pool) -> list[str]:
    """Every run is finished or waiting, with a history that agrees: a finished run has no step
    still requested, a succeeded run's every state ended in a succeeded attempt, a waiting run
    has its open wait; every test action's effect happened at most once."""
    problems = [
        f"run {r['run_id']} ({r['workflow_type']}) is {r['status']} in {r['current_state']}"
        for r in await db.fetch(
            "SELECT run_id, workflow_type, status, current_state FROM workflow.runs"
            " WHERE status <> ALL($1::text[])",
            [*FINISHED, "waiting"],
        )
    ]
    problems += [
        f"run {r['run_id']} is {r['status']} with step {r['state']} still requested"
        for r in await db.fetch(
            "SELECT r.run_id, r.status, s.state FROM workflow.runs r JOIN workflow.steps s"
            " USING (run_id) WHERE s.status = 'requested' AND r.status <> 'running'"
        )
    ]
    problems += [
        f"run {r['run_id']} succeeded but its {r['state']} ended {r['status']}"
        for r in await db.fetch(
            "SELECT DISTINCT ON (s.run_id, s.state, s.visit) s.run_id, s.state, s.status"
            " FROM workflow.steps s JOIN workflow.runs r USING (run_id)"
            " WHERE r.status = 'succeeded' ORDER BY s.run_id, s.state, s.visit, s.attempt DESC"
        )
        if r["status"] != "succeeded"
    ]
    problems += [
        f"run {r['run_id']} is waiting with no open wait"
        for r in await db.fetch(
            "SELECT run_id FROM workflow.runs r WHERE status = 'waiting' AND NOT EXISTS"
            " (SELECT 1 FROM workflow.waits w WHERE w.run_id = r.run_id AND w.status = 'waiting')"
        )
    ]
    problems += [
        f"run {r['run_id']} has {r['finished']} finished at times but status {r['status']}"
        for r in await db.fetch(
            "SELECT run_id, status, finished_at AS finished FROM workflow.runs"
            " WHERE (status = ANY($1::text[])) <> (finished_at IS NOT NULL)",
            list(FINISHED),
        )
    ]
    problems += [
        f"testkit effect of run {r['run_id']} {r['state']} visit {r['visit']} happened {r['n']}x"
        for r in await db.fetch(
            "SELECT run_id, state, visit, count(*) AS n FROM testkit.effects"
            " GROUP BY run_id, state, visit HAVING count(*) > 1"
        )
    ]
    return problems


async def stale_outbox(db: asyncpg.Pool) -> dict[str, int]:
    """Unpublished outbox rows older than a minute, by schema (every schema with an outbox)."""
    schemas = [
        r["table_schema"]
        for r in await db.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        )
    ]
    stale: dict[str, int] = {}
    for schema in sorted(schemas):
        count = await db.fetchval(
            f"SELECT count(*) FROM {schema}.outbox"  # noqa: S608 - names from the catalogue
            " WHERE published_at IS NULL AND created_at < now() - interval '1 minute'"
        )
        if count:
            stale[schema] = count
    return stale


async def dead_letters(settings: Settings) -> list[str]:
    """What is on events.deadletter, one line each: source topic, consumer, reason."""
    return [
        f"{x.record.offset}: {x.letter.source_topic} ({x.letter.consumer}): {x.letter.reason}"
        if x.letter is not None
        else f"{x.record.offset}: {x.error}"
        for x in await deadletters.read_letters(settings)
    ]
