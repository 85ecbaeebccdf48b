"""The email campaign, version 1, through the gateway, the workflow engine and the campaign
service: a request becomes one personalised draft per matching candidate, footer included, and the
run waits for review. A job title that names no open job, or an audience nobody fits, fails the run
with the reason.

The session database is shared, so every test makes its own job and candidates, marked with a
fresh tag, and asks for a skill only they have; its rows are deleted afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.campaign.domain.links import UnsubscribeLinks
from shared.settings import Settings
from tests.conftest import Gateway, Launcher
from tests.support.api import client_for, wait_for_status

pytestmark = pytest.mark.integration

FINISHED = {"succeeded", "failed", "cancelled", "expired"}


@pytest.fixture(scope="module")
def gateway(module_launcher: Launcher) -> Gateway:
    module_launcher.service("workflow")
    module_launcher.service("campaign")
    return module_launcher.gateway()


@pytest.fixture(scope="module")
async def api(gateway: Gateway, prepared: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gateway, prepared, "recruiter", {"workflows"}) as client:
        yield client


async def add_candidate(
    db: asyncpg.Pool,
    tag: str,
    name: str,
    *,
    first_name: str | None,
    city: str,
    skills: list[str],
    years: int,
    found_via: str | None = "GitHub",
) -> str:
    email = f"{name.split()[0].lower()}-{tag}@example.com"
    await db.execute(
        "INSERT INTO campaign.candidates (full_name, first_name, email, city, country,"
        " years_experience, skills, source, found_via)"
        " VALUES ($1, $2, $3, $4, 'DE', $5, $6, 'test', $7)",
        name, first_name, email, city, years, skills, found_via,
    )  # fmt: skip
    return email


async def add_job(db: asyncpg.Pool, title: str, skills: list[str]) -> uuid.UUID:
    job_id: uuid.UUID = await db.fetchval(
        "INSERT INTO campaign.jobs (title, city, country, skills)"
        " VALUES ($1, 'Berlin', 'DE', $2) RETURNING job_id",
        title, skills,
    )  # fmt: skip
    return job_id


async def start_campaign(api: httpx.AsyncClient, **slots: Any) -> str:
    response = await api.post(
        "/api/workflows", json={"type": "email_campaign", "params": {"slots": slots}}
    )
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def test_drafts_one_personal_email_per_matching_candidate_then_awaits_review(
    api: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    skill = f"python-{tag}"
    title = f"Platform Engineer {tag}"
    job_id = await add_job(db, title, [skill, "postgresql"])
    ada = await add_candidate(
        db, tag, "Ada Lovelace", first_name="Ada", city="Berlin", skills=[skill], years=12
    )
    bruno = await add_candidate(
        db, tag, "Bruno Keller", first_name=None, city="berlin", skills=[skill, "postgresql"],
        years=3, found_via=None,
    )  # fmt: skip
    await add_candidate(  # the wrong skill
        db, tag, "Carla Diaz", first_name="Carla", city="Berlin", skills=["java"], years=8
    )
    await add_candidate(  # the wrong city
        db, tag, "Dmitri Petrov", first_name="Dmitri", city="Hamburg", skills=[skill], years=9
    )
    unsubscribed = await add_candidate(
        db, tag, "Eve Moreau", first_name="Eve", city="Berlin", skills=[skill], years=20
    )
    await db.execute(
        "INSERT INTO campaign.suppressions (email, reason) VALUES ($1, 'unsubscribed')",
        unsubscribed,
    )

    run_id = await start_campaign(api, skills=[skill], location="Berlin", job_title=title)
    run = await wait_for_status(api, run_id, {"waiting", *FINISHED})
    assert (run["status"], run["state"]) == ("waiting", "await_review"), run.get("error")
    assert run["outputs"]["extract_candidates"] == {
        "job_id": str(job_id),
        "job_title": title,
        "recipients": 2,
    }
    assert run["outputs"]["generate_drafts"] == {"drafted": 2, "mode": "template"}
    assert run["waiting_for"]["signal"] == "review_finished"
    assert run["waiting_for"]["deadline_at"] is not None

    campaign_id = uuid.UUID(run_id)
    campaign = await db.fetchrow(
        "SELECT job_id, status, generation_mode, slots FROM campaign.campaigns"
        " WHERE campaign_id = $1",
        campaign_id,
    )
    assert campaign is not None
    assert (campaign["job_id"], campaign["status"], campaign["generation_mode"]) == (
        job_id,
        "awaiting_review",
        "template",
    )
    assert json.loads(campaign["slots"])["skills"] == [skill]

    emails = await db.fetch(
        "SELECT e.email_id, e.to_address, e.subject, e.body, e.status, e.message_id, r.rank"
        " FROM campaign.emails e JOIN campaign.recipients r USING (campaign_id, candidate_id)"
        " WHERE e.campaign_id = $1 ORDER BY r.rank",
        campaign_id,
    )
    assert [(e["to_address"], e["status"]) for e in emails] == [
        (ada, "drafted"),  # more experience ranks first
        (bruno, "drafted"),
    ]
    links = UnsubscribeLinks.from_settings(prepared)
    for email, greeting in zip(emails, ["Hi Ada,", "Hi Bruno Keller,"], strict=True):
        body: str = email["body"]
        assert title in email["subject"]
        assert greeting in body
        assert f"Unsubscribe with one click: {links.url(email['email_id'])}" in body
        assert body.count("Unsubscribe with one click") == 1
        assert email["message_id"] == f"<{email['email_id']}@{prepared.sender_email.split('@')[1]}>"
    assert "We found your contact details via GitHub." in emails[0]["body"]
    assert "tell you where we found your contact details" in emails[1]["body"]


async def test_a_title_that_names_no_open_job_fails_asking_which_job(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    skill = f"python-{tag}"
    await add_job(db, f"Platform Engineer {tag}", [skill])
    await add_candidate(
        db, tag, "Ada Lovelace", first_name="Ada", city="Berlin", skills=[skill], years=5
    )

    asked = f"Underwater Basket Weaver {tag}"
    run_id = await start_campaign(api, skills=[skill], location="Berlin", job_title=asked)
    run = await wait_for_status(api, run_id, FINISHED)
    assert (run["status"], run["state"]) == ("failed", "failed")
    assert "needs_clarification" in run["error"]
    assert f'I found no open job matching "{asked}"' in run["error"]
    assert [(s["state"], s["attempt"], s["status"]) for s in run["steps"]] == [
        ("extract_candidates", 1, "failed")  # not retried: asking again would not help
    ]
    assert not await db.fetchval(
        "SELECT count(*) FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )


async def test_an_audience_nobody_fits_fails_without_leaving_a_campaign(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    title = f"Platform Engineer {tag}"
    await add_job(db, title, [f"python-{tag}"])
    run_id = await start_campaign(api, skills=[f"cobol-{tag}"], location="Berlin", job_title=title)
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "failed"
    assert "no_candidates" in run["error"]
    assert f"skills cobol-{tag}, location Berlin" in run["error"]
    assert not await db.fetchval(
        "SELECT count(*) FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )
