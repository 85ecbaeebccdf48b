"""Scaling out: with three partitions a topic, two instances of the workflow service and two of
the campaign service split every consumer group's partitions between them and together run the
campaigns; killing one instance of each hands its partitions to the other, and every run still
reaches its end, with each approved email sent exactly once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from shared.settings import Settings
from tests.support.api import MakeKey, start_campaign, wait_for, wait_for_state
from tests.support.campaign_rows import Audience, add_audience
from tests.support.kafka import group_assignment
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Launcher

pytestmark = pytest.mark.integration

# The consumer groups of the two services, for their commands (shared/service.py) and their
# events (services/workflow/app.py, services/campaign/app.py): each one shared, then taken over.
GROUPS = ("workflow", "workflow.engine", "campaign", "campaign.events")
CAMPAIGNS_BEFORE_KILL = 3
CAMPAIGNS_AT_KILL = 3
RECIPIENTS = 3
SESSION_TIMEOUT_MS = 6_000


async def approve_all(api: httpx.AsyncClient, run_ids: list[str]) -> None:
    for run_id in run_ids:
        response = await api.post(f"/api/campaigns/{run_id}/approve-all")
        assert response.status_code == 200, response.text


async def audience_state(db: asyncpg.Pool, audience: Audience) -> str:
    """What the database holds about an audience, for a failure's message: its candidates, its
    job's campaigns and emails, and any suppression of its addresses."""
    rows = {
        "candidates": await db.fetch(
            "SELECT candidate_id, email, city, skills, created_at FROM campaign.candidates"
            " WHERE $1 = ANY(skills)",
            audience.skill,
        ),
        "campaigns": await db.fetch(
            "SELECT campaign_id, status, created_at FROM campaign.campaigns WHERE job_id = $1",
            audience.job_id,
        ),
        "emails": await db.fetch(
            "SELECT campaign_id, candidate_id, status FROM campaign.emails WHERE job_id = $1",
            audience.job_id,
        ),
        "suppressions": await db.fetch(
            "SELECT email, reason FROM campaign.suppressions WHERE email = ANY($1::text[])",
            [a.lower() for a in audience.addresses],
        ),
    }
    return "\n".join(f"{name}: {[dict(r) for r in found]}" for name, found in rows.items())


async def members_of(settings: Settings, members: int) -> bool:
    """Whether each group has exactly `members` members, each holding some partitions."""
    for group in GROUPS:
        assignment = await group_assignment(settings, group)
        if len(assignment) != members or not all(assignment.values()):
            return False
    return True


@pytest.mark.timeout(300)  # two instances of each service, then a consumer session to time out
async def test_two_instances_share_the_work_and_one_takes_over_when_the_other_is_killed(
    launcher: Launcher,
    prepared: Settings,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    tag: str,
    make_key: MakeKey,
) -> None:
    if prepared.kafka_topic_partitions < 3:
        pytest.skip("needs three partitions a topic (KAFKA_TOPIC_PARTITIONS; 1 on Tansu)")
    env = {
        **smtp.env,
        "SEND_RATE_PER_SECOND": "0",
        "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
        "KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
    }
    workflows = [launcher.service("workflow", **env) for _ in range(2)]
    campaigns = [launcher.service("campaign", **env) for _ in range(2)]
    gateway = launcher.gateway()
    await wait_for(lambda: members_of(prepared, 2), timeout=60, what="two members per group")
    audiences = [
        await add_audience(db, tag, RECIPIENTS)
        for _ in range(CAMPAIGNS_BEFORE_KILL + CAMPAIGNS_AT_KILL)
    ]
    before_kill, at_kill = audiences[:CAMPAIGNS_BEFORE_KILL], audiences[CAMPAIGNS_BEFORE_KILL:]

    async with gateway.client(await make_key("workflows", "review", user="scaler")) as api:
        # Both instances of each service at work.
        first = [await start_campaign(api, audience.slots) for audience in before_kill]
        for run_id in first:
            await wait_for_state(api, run_id, "await_review", timeout=90)
        await approve_all(api, first)
        await smtp.wait_for_messages(CAMPAIGNS_BEFORE_KILL * RECIPIENTS, timeout=60)
        for run_id in first:
            await wait_for_state(api, run_id, "monitoring", timeout=90)

        # More campaigns in flight, then one instance of each service killed.
        second = [await start_campaign(api, audience.slots) for audience in at_kill]
        workflows[0].kill()
        campaigns[0].kill()
        await wait_for(lambda: members_of(prepared, 1), timeout=60, what="one member per group")
        for group in GROUPS:  # the survivor holds every partition of every topic
            (held,) = (await group_assignment(prepared, group)).values()
            assert held == {(topic, partition) for topic, _ in held for partition in range(3)}

        for run_id, audience in zip(second, at_kill, strict=True):
            try:
                await wait_for_state(api, run_id, "await_review", timeout=90)
            except AssertionError as failed:  # a rare failure whose cause is not known yet
                raise AssertionError(f"{failed}\n{await audience_state(db, audience)}") from None
        await approve_all(api, second)
        await smtp.wait_for_messages(len(audiences) * RECIPIENTS, timeout=60)
        for run_id in second:
            await wait_for_state(api, run_id, "monitoring", timeout=90)
        await asyncio.sleep(1.0)  # a duplicate would arrive by now

    for survivor in (workflows[1], campaigns[1]):
        assert survivor.proc is not None
        assert survivor.proc.poll() is None
    received = sorted(message.rcpt_tos[0] for message in smtp.messages)
    assert received == sorted(a for audience in audiences for a in audience.addresses)  # each once
    statuses = await db.fetch(
        "SELECT status, count(*) AS n FROM campaign.emails WHERE campaign_id = ANY($1::uuid[])"
        " GROUP BY status",
        [uuid.UUID(run_id) for run_id in first + second],
    )
    assert {row["status"]: row["n"] for row in statuses} == {"sent": len(audiences) * RECIPIENTS}
