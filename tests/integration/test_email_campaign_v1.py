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

import asyncpg
import httpx
import pytest

from services.campaign.domain.links import UnsubscribeLinks
from shared.settings import Settings
from tests.support.api import FINISHED, start_campaign, wait_for_run, wait_for_status
from tests.support.campaign_rows import add_candidate, add_job, add_suppression
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The workflow and campaign services; the API as a recruiter."""
    return Stack({"workflow": {}, "campaign": {}}, user="recruiter", scopes=("workflows",))


async def test_drafts_one_personal_email_per_matching_candidate_then_awaits_review(
    api: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    skill = f"python-{tag}"
    title = f"Platform Engineer {tag}"
    job_id = await add_job(db, title, skills=[skill, "postgresql"])
    ada, bruno = f"ada-{tag}@example.com", f"bruno-{tag}@example.com"
    ada_id = await add_candidate(
        db, "Ada Lovelace", email=ada, first_name="Ada", skills=[skill], years=12
    )
    # Ada asked for English; Bruno, in Germany, gets German (docs/privacy.md).
    await db.execute(
        "UPDATE campaign.candidates SET language = 'en' WHERE candidate_id = $1", ada_id
    )
    await add_candidate(
        db, "Bruno Keller", email=bruno, city="berlin", skills=[skill, "postgresql"], years=3,
        found_via=None,
    )  # fmt: skip
    await add_candidate(  # the wrong skill
        db, "Carla Diaz", email=f"carla-{tag}@example.com", first_name="Carla", skills=["java"],
        years=8,
    )  # fmt: skip
    await add_candidate(  # the wrong city
        db, "Dmitri Petrov", email=f"dmitri-{tag}@example.com", first_name="Dmitri",
        city="Hamburg", skills=[skill], years=9,
    )  # fmt: skip
    unsubscribed = f"eve-{tag}@example.com"
    await add_candidate(
        db, "Eve Moreau", email=unsubscribed, first_name="Eve", skills=[skill], years=20
    )
    await add_suppression(db, unsubscribed)

    slots = {"skills": [skill], "location": "Berlin", "job_title": title}
    run_id = await start_campaign(api, slots)
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
    languages = [
        ("Hi Ada,", "Unsubscribe with one click"),
        ("Hallo Bruno Keller,", "Kein Interesse? Mit einem Klick abmelden"),
    ]
    for email, (greeting, unsubscribe) in zip(emails, languages, strict=True):
        body: str = email["body"]
        assert title in email["subject"]
        assert greeting in body
        assert f"{unsubscribe}: {links.url(email['email_id'])}" in body
        assert body.count(links.url(email["email_id"])) == 1
        assert email["message_id"] == f"<{email['email_id']}@{prepared.sender_email.split('@')[1]}>"
    assert "We found your contact details via GitHub." in emails[0]["body"]
    assert "legitimate interest (GDPR Art. 6(1)(f))" in emails[0]["body"]
    assert "wo wir Ihre Kontaktdaten gefunden haben" in emails[1]["body"]
    assert "Art. 6 Abs. 1 lit. f DSGVO" in emails[1]["body"]


async def test_a_title_that_names_no_open_job_waits_asking_which_job(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    skill = f"python-{tag}"
    job_id = await add_job(db, f"Platform Engineer {tag}", skills=[skill])
    await add_candidate(
        db,
        "Ada Lovelace",
        email=f"ada-{tag}@example.com",
        first_name="Ada",
        skills=[skill],
        years=5,
    )

    asked = f"Underwater Basket Weaver {tag}"
    run_id = await start_campaign(
        api, {"skills": [skill], "location": "Berlin", "job_title": asked}
    )
    run = await wait_for_run(api, run_id, lambda r: r["question"] is not None)
    assert (run["status"], run["state"], run["error"]) == ("waiting", "extract_candidates", None)
    assert f'I found no open job matching "{asked}"' in run["question"]["text"]
    assert {"label": f"Platform Engineer {tag} (Berlin)", "value": str(job_id)} in run["question"][
        "choices"
    ]
    assert run["waiting_for"]["signal"] == "input"
    assert [(s["state"], s["attempt"], s["status"]) for s in run["steps"]] == [
        ("extract_candidates", 1, "failed")  # not retried: asking again would not help
    ]
    assert "needs_input" in run["steps"][0]["error"]
    assert not await db.fetchval(
        "SELECT count(*) FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )
    cancelled = await api.post(f"/api/workflows/{run_id}/cancel")  # nobody will answer
    assert cancelled.json()["status"] == "cancelled"


async def test_an_audience_nobody_fits_fails_without_leaving_a_campaign(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    title = f"Platform Engineer {tag}"
    await add_job(db, title, skills=[f"python-{tag}"])
    run_id = await start_campaign(
        api, {"skills": [f"cobol-{tag}"], "location": "Berlin", "job_title": title}
    )
    run = await wait_for_status(api, run_id, FINISHED)
    assert run["status"] == "failed"
    assert "no_candidates" in run["error"]
    assert f"skills cobol-{tag}, location Berlin" in run["error"]
    assert not await db.fetchval(
        "SELECT count(*) FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )
