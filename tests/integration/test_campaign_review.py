"""Reviewing a campaign's drafts through the gateway, with the real workflow and campaign services:
one at a time (approve, edit-then-approve, reject, each answering the review's counts) or all at
once; every approval published on `email.approved`, the run signalled once when no draft is left,
bad requests refused without a change, and drafts nobody decided expiring at the review deadline.
Each email carries its candidate's profile; an edit can be saved without a decision; the campaign
knows its review deadline.

The session database is shared, so every test makes its own job and candidates, marked with a
fresh tag, and asks for a skill only they have; its rows are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.broker import partition_count
from shared.settings import Settings
from shared.topics import EMAIL_APPROVED
from tests.support.api import FINISHED, MakeKey, start_campaign, wait_for, wait_for_run
from tests.support.campaign_rows import add_audience
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

REVIEWER = "sam-reviewer"
APPROVED_OR_LATER = {"approved", "sending", "sent", "failed", "bounced"}


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The workflow and campaign services; the API as a reviewer who may also start campaigns."""
    return Stack({"workflow": {}, "campaign": {}}, user=REVIEWER, scopes=("workflows", "review"))


async def campaign_at_review(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, recipients: int, **params: Any
) -> tuple[str, list[dict[str, Any]]]:
    """A campaign of its own job and `recipients` candidates, waiting for review; its drafts as
    the API lists them (best-ranked first)."""
    audience = await add_audience(db, tag, recipients)
    run_id = await start_campaign(api, audience.slots, **params)
    run = await wait_for_run(api, run_id, lambda r: r["status"] != "running")
    assert (run["status"], run["state"]) == ("waiting", "await_review"), run.get("error")
    drafts = await list_emails(api, run_id, status="drafted")
    assert len(drafts) == recipients
    return run_id, drafts


async def list_emails(api: httpx.AsyncClient, campaign_id: str, **query: Any) -> list[Any]:
    response = await api.get(f"/api/campaigns/{campaign_id}/emails", params=query)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def approve(
    api: httpx.AsyncClient, campaign_id: str, email_id: str, **edit: str
) -> httpx.Response:
    url = f"/api/campaigns/{campaign_id}/emails/{email_id}/approve"
    return await api.post(url, json=edit) if edit else await api.post(url)


async def outbox_events(db: asyncpg.Pool, campaign_id: str, topic: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT payload FROM campaign.outbox WHERE topic = $1"
        " AND (payload->>'campaign_id' = $2 OR payload->>'run_id' = $2) ORDER BY id",
        topic,
        campaign_id,
    )
    return [json.loads(row["payload"]) for row in rows]


async def published_approvals(
    db: asyncpg.Pool, settings: Settings, campaign_id: str
) -> list[dict[str, Any]]:
    """The `email.approved` events about the campaign on the topic: read from the beginning until
    every such event in the campaign's outbox has been seen there (the outbox is the record of
    what was approved; the topic must carry each of them, and nothing else about the campaign)."""
    written = {e["event_id"] for e in await outbox_events(db, campaign_id, EMAIL_APPROVED.name)}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(
            [
                TopicPartition(EMAIL_APPROVED.name, p)
                for p in range(partition_count(settings, EMAIL_APPROVED))
            ]
        )
        events: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 15
        # With nothing to wait for, a few quiet reads show nothing about the campaign arrives.
        quiet_reads = 0
        while not written <= {e["event_id"] for e in events} or (not written and quiet_reads < 3):
            assert asyncio.get_running_loop().time() < deadline, (written, events)
            batches = await consumer.getmany(timeout_ms=300)
            quiet_reads += not batches
            for messages in batches.values():
                for message in messages:
                    assert message.value is not None
                    event = json.loads(message.value)
                    if event["campaign_id"] == campaign_id:
                        assert message.key == campaign_id.encode()
                        events.append(event)
        return events
    finally:
        await consumer.stop()


async def email_rows(db: asyncpg.Pool, *campaign_ids: str) -> list[tuple[Any, ...]]:
    """What review decides about the campaigns' emails (the sender moves approved ones on)."""
    rows = await db.fetch(
        "SELECT email_id, status, subject, body, edited, reviewed_by, reviewed_at"
        " FROM campaign.emails WHERE campaign_id = ANY($1::uuid[]) ORDER BY email_id",
        list(campaign_ids),
    )
    return [
        (r["email_id"], "approved" if r["status"] in APPROVED_OR_LATER else r["status"],
         *list(r.values())[2:])
        for r in rows
    ]  # fmt: skip


async def test_approve_edit_and_reject_one_by_one_then_the_run_moves_on(
    api: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    run_id, drafts = await campaign_at_review(api, db, tag, 3)
    first, second, third = drafts
    assert [d["rank"] for d in drafts] == [1, 2, 3]
    assert all(d["status"] == "drafted" and d["reviewed_by"] is None for d in drafts)
    footer = second["body"][second["body"].index("-- \n") :].rstrip()

    approved = await approve(api, run_id, first["email_id"])
    assert approved.status_code == 200, approved.text
    view = approved.json()
    assert (view["status"], view["edited"], view["reviewed_by"]) == ("approved", False, REVIEWER)
    assert view["reviewed_at"] is not None
    assert view["counts"] == {"drafted": 2, "approved": 1, "rejected": 0, "expired": 0}
    assert (view["subject"], view["body"]) == (first["subject"], first["body"])

    new_body = "Hi Person1,\n\nI rewrote this one myself: fancy a coffee?\n\nSam"
    edited = await approve(api, run_id, second["email_id"], subject="Coffee?", body=new_body)
    assert edited.status_code == 200, edited.text
    view = edited.json()
    assert (view["status"], view["edited"], view["subject"]) == ("approved", True, "Coffee?")
    assert view["body"].startswith(new_body + "\n\n-- \n")
    assert view["body"].count(footer) == 1
    assert view["body"].count("\n-- \n") == 1  # the footer, in the candidate's language, once
    stored = await db.fetchrow(
        "SELECT subject, body, edited, reviewed_by FROM campaign.emails WHERE email_id = $1",
        uuid.UUID(second["email_id"]),
    )
    assert stored is not None
    assert dict(stored) == {
        "subject": "Coffee?",
        "body": view["body"],
        "edited": True,
        "reviewed_by": REVIEWER,
    }

    assert view["counts"] == {"drafted": 1, "approved": 2, "rejected": 0, "expired": 0}

    again = await approve(api, run_id, second["email_id"])  # a repeated request: no change
    assert again.status_code == 200, again.text
    assert (again.json()["subject"], again.json()["body"]) == ("Coffee?", view["body"])
    assert again.json()["counts"] == view["counts"]

    assert (await db.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )) == "awaiting_review"  # fmt: skip
    rejected = await api.post(f"/api/campaigns/{run_id}/emails/{third['email_id']}/reject")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reviewed_by"]) == ("rejected", REVIEWER)
    assert rejected.json()["counts"] == {"drafted": 0, "approved": 2, "rejected": 1, "expired": 0}

    run = await wait_for_run(api, run_id, lambda r: r["state"] != "await_review")
    assert run["state"] in {"await_sending", "monitoring"}, run
    assert await list_emails(api, run_id, status="drafted") == []
    assert (await db.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )) in {"sending", "monitoring", "completed"}  # fmt: skip

    signals = await outbox_events(db, run_id, "workflow.signals")
    review_signals = [s for s in signals if s["name"] == "review_finished"]
    assert [s["payload"] for s in review_signals] == [{"approved": 2, "rejected": 1, "expired": 0}]

    events = await published_approvals(db, prepared, run_id)
    assert sorted((e["email_id"], e["edited"], e["approved_by"]) for e in events) == sorted(
        [(first["email_id"], False, REVIEWER), (second["email_id"], True, REVIEWER)]
    )  # one per approval, none for the repeat or the rejection

    page = await api.get(f"/api/campaigns/{run_id}/emails", params={"limit": 2})
    assert page.status_code == 200, page.text
    assert [e["email_id"] for e in page.json()["items"]] == [first["email_id"], second["email_id"]]
    rest = await list_emails(api, run_id, limit=2, cursor=page.json()["next_cursor"])
    assert [e["email_id"] for e in rest] == [third["email_id"]]
    assert [e["email_id"] for e in await list_emails(api, run_id, status="rejected")] == [
        third["email_id"]
    ]


async def test_approve_all_decides_every_pending_draft_once(
    api: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    run_id, drafts = await campaign_at_review(api, db, tag, 4)
    rejected = await api.post(f"/api/campaigns/{run_id}/emails/{drafts[0]['email_id']}/reject")
    assert rejected.status_code == 200, rejected.text

    response = await api.post(f"/api/campaigns/{run_id}/approve-all")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["decision"], result["decided"]) == ("approve", 3)
    assert result["review"] == {"drafted": 0, "approved": 3, "rejected": 1, "expired": 0}
    assert [e["email_id"] for e in result["items"]] == [d["email_id"] for d in drafts[1:]]
    assert {(e["status"], e["reviewed_by"]) for e in result["items"]} == {("approved", REVIEWER)}

    again = await api.post(f"/api/campaigns/{run_id}/approve-all")
    assert again.status_code == 200, again.text
    assert (again.json()["decided"], again.json()["items"]) == (0, [])

    run = await wait_for_run(api, run_id, lambda r: r["state"] != "await_review")
    assert run["state"] in {"await_sending", "monitoring"}, run
    signals = await outbox_events(db, run_id, "workflow.signals")
    assert [s["name"] for s in signals].count("review_finished") == 1
    events = await published_approvals(db, prepared, run_id)
    assert sorted(e["email_id"] for e in events) == sorted(d["email_id"] for d in drafts[1:])


async def test_reject_all_finishes_the_review_with_nothing_to_send(
    api: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    run_id, _ = await campaign_at_review(api, db, tag, 2)
    response = await api.post(f"/api/campaigns/{run_id}/reject-all")
    assert response.status_code == 200, response.text
    assert response.json()["decided"] == 2
    assert response.json()["review"] == {"drafted": 0, "approved": 0, "rejected": 2, "expired": 0}

    # Nothing to send: the sender finishes the sending at once, and the run monitors (nothing).
    run = await wait_for_run(
        api, run_id, lambda r: r["state"] not in {"await_review", "await_sending"}
    )
    assert (run["status"], run["state"]) == ("waiting", "monitoring"), run
    assert (await db.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )) == "monitoring"  # fmt: skip
    assert await outbox_events(db, run_id, EMAIL_APPROVED.name) == []
    assert await published_approvals(db, prepared, run_id) == []
    signals = await outbox_events(db, run_id, "workflow.signals")
    review_signals = [s for s in signals if s["name"] == "review_finished"]
    assert [s["payload"] for s in review_signals] == [{"approved": 0, "rejected": 2, "expired": 0}]


async def test_concurrent_decisions_finish_the_review_exactly_once(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    run_id, drafts = await campaign_at_review(api, db, tag, 6)
    # Each draft approved on its own and by approve-all at once (each twice): whichever comes
    # first decides it, the other changes nothing, and only the very last decision ends the review.
    responses = await asyncio.gather(
        *(approve(api, run_id, d["email_id"]) for d in drafts),
        api.post(f"/api/campaigns/{run_id}/approve-all"),
        api.post(f"/api/campaigns/{run_id}/approve-all"),
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert sum(r.json()["decided"] for r in responses[-2:]) <= 6
    assert {r.json()["status"] for r in responses[:-2]} == {"approved"}
    signals = await outbox_events(db, run_id, "workflow.signals")
    assert [s["name"] for s in signals].count("review_finished") == 1
    approvals = await outbox_events(db, run_id, "email.approved")
    assert sorted(a["email_id"] for a in approvals) == sorted(d["email_id"] for d in drafts)
    run = await wait_for_run(api, run_id, lambda r: r["state"] != "await_review")
    assert run["state"] in {"await_sending", "monitoring"}, run


async def test_bad_requests_are_refused_without_a_change(
    api: httpx.AsyncClient, db: asyncpg.Pool, gateway: Gateway, make_key: MakeKey, tag: str
) -> None:
    run_a, drafts_a = await campaign_at_review(api, db, tag, 3)
    run_b, drafts_b = await campaign_at_review(api, db, tag, 1)
    approved = await approve(api, run_a, drafts_a[0]["email_id"])
    assert approved.status_code == 200, approved.text
    await db.execute(  # as if the sender had sent it
        "UPDATE campaign.emails SET status = 'sent', sent_at = now() WHERE email_id = $1",
        uuid.UUID(drafts_a[1]["email_id"]),
    )
    before = await email_rows(db, run_a, run_b)
    outbox_before = await db.fetchval("SELECT count(*) FROM campaign.outbox")
    unknown = str(uuid.uuid4())
    a0, a1, a2, b0 = (
        drafts_a[0]["email_id"],
        drafts_a[1]["email_id"],
        drafts_a[2]["email_id"],
        drafts_b[0]["email_id"],
    )

    async def refused(method: str, url: str, status: int, text: str, **kw: Any) -> None:
        response = await api.request(method, url, **kw)
        assert response.status_code == status, (url, response.text)
        assert text in response.text, (url, response.text)

    # a draft of another campaign, and campaigns or emails that do not exist
    await refused("POST", f"/api/campaigns/{run_a}/emails/{b0}/approve", 404, "has no email")
    await refused("POST", f"/api/campaigns/{run_a}/emails/{b0}/reject", 404, "has no email")
    await refused("POST", f"/api/campaigns/{run_a}/emails/{unknown}/approve", 404, "has no email")
    await refused("POST", f"/api/campaigns/{unknown}/emails/{a2}/approve", 404, "no campaign")
    await refused("GET", f"/api/campaigns/{unknown}/emails", 404, "no campaign")
    await refused("POST", f"/api/campaigns/{unknown}/approve-all", 404, "no campaign")
    await refused("POST", f"/api/campaigns/{unknown}/reject-all", 404, "no campaign")
    # empty or malformed edits
    edit_url = f"/api/campaigns/{run_a}/emails/{a2}/approve"
    await refused("POST", edit_url, 422, "must not be empty", json={"body": "   "})
    await refused("POST", edit_url, 422, "must not be empty", json={"body": ""})
    await refused("POST", edit_url, 422, "must not be empty", json={"subject": " "})
    await refused("POST", edit_url, 422, "one line", json={"subject": "a\nb"})
    await refused("POST", edit_url, 422, "bogus", json={"body": None, "bogus": 1})
    footer_only = footer_text_of(drafts_a[2]["body"])
    await refused("POST", edit_url, 422, "apart from the footer", json={"body": footer_only})
    await refused("POST", f"/api/campaigns/{run_a}/emails/not-a-uuid/approve", 422, "email_id")
    await refused("GET", f"/api/campaigns/{run_a}/emails", 422, "cursor", params={"cursor": "x"})
    await refused("GET", f"/api/campaigns/{run_a}/emails", 422, "status", params={"status": "x"})
    # decided emails: editing an approved or a sent one, rejecting them, approving a rejected one
    await refused("POST", f"/api/campaigns/{run_a}/emails/{a0}/approve", 409, "already approved",
                  json={"body": "Changed my mind."})  # fmt: skip
    await refused("POST", f"/api/campaigns/{run_a}/emails/{a1}/approve", 409, "already sent",
                  json={"subject": "Too late"})  # fmt: skip
    await refused("POST", f"/api/campaigns/{run_a}/emails/{a1}/reject", 409, "is sent")
    await refused("POST", f"/api/campaigns/{run_a}/emails/{a0}/reject", 409, "is approved")
    # without the review scope
    async with gateway.client(await make_key("workflows", user="no-review")) as other:
        response = await other.post(f"/api/campaigns/{run_a}/emails/{a2}/approve")
        assert response.status_code == 403, response.text

    assert await email_rows(db, run_a, run_b) == before
    assert await db.fetchval("SELECT count(*) FROM campaign.outbox") == outbox_before
    run = await wait_for_run(api, run_a, lambda r: True)
    assert (run["status"], run["state"]) == ("waiting", "await_review")


def footer_text_of(body: str) -> str:
    return body[body.index("-- \n") :]


async def test_drafts_nobody_decided_expire_at_the_review_deadline(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    # 0.001 hours (3.6 s) leaves time to approve one draft before the deadline.
    run_id, drafts = await campaign_at_review(api, db, tag, 3, review_hours=0.001)
    approved = await approve(api, run_id, drafts[0]["email_id"])
    assert approved.status_code == 200, approved.text

    run = await wait_for_run(api, run_id, lambda r: r["status"] in FINISHED, timeout=30)
    assert (run["status"], run["state"]) == ("expired", "expired"), run
    assert run["outputs"]["expire_drafts"] == {"expired": 2}
    rows = await db.fetch(
        "SELECT email_id::text, status FROM campaign.emails WHERE campaign_id = $1",
        uuid.UUID(run_id),
    )
    statuses: dict[str, str] = {row["email_id"]: row["status"] for row in rows}
    assert statuses[drafts[0]["email_id"]] in APPROVED_OR_LATER  # approved in time: still sent
    assert [statuses[d["email_id"]] for d in drafts[1:]] == ["expired", "expired"]
    assert (await db.fetchval(
        "SELECT status FROM campaign.campaigns WHERE campaign_id = $1", uuid.UUID(run_id)
    )) == "expired"  # fmt: skip
    late = await approve(api, run_id, drafts[1]["email_id"])
    assert late.status_code == 409, late.text
    assert "is expired" in late.text
    assert [e["email_id"] for e in await list_emails(api, run_id, status="expired")] == [
        d["email_id"] for d in drafts[1:]
    ]


async def test_each_email_carries_its_candidates_profile(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    run_id, drafts = await campaign_at_review(api, db, tag, 2)
    await db.execute(
        "UPDATE campaign.candidates SET headline = 'Ledger whisperer', seniority = 'senior'"
        " WHERE candidate_id = $1",
        uuid.UUID(drafts[0]["candidate_id"]),
    )
    first, second = await list_emails(api, run_id, status="drafted")
    skill = first["candidate"]["skills"][0]
    assert skill.startswith(f"python-{tag}-")
    assert first["candidate"] == {
        "full_name": "Person0 Test",
        "city": "Berlin",
        "country": "DE",
        "seniority": "senior",
        "years_experience": 20,
        "skills": [skill],
        "matched_skills": [skill],
        "headline": "Ledger whisperer",
        "source": "test",
        "found_via": "GitHub",
    }
    assert second["candidate"]["full_name"] == "Person1 Test"
    assert (second["candidate"]["years_experience"], second["candidate"]["headline"]) == (19, None)

    # an edit's answer, a decision's and reject-all's items carry it too
    edited = await api.post(
        f"/api/campaigns/{run_id}/emails/{first['email_id']}/edit", json={"subject": "Hello"}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["candidate"] == first["candidate"]
    rejected = await api.post(f"/api/campaigns/{run_id}/emails/{first['email_id']}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["candidate"] == first["candidate"]
    result = await api.post(f"/api/campaigns/{run_id}/reject-all")
    assert result.status_code == 200, result.text
    assert [e["candidate"] for e in result.json()["items"]] == [second["candidate"]]
    await review_over(api, run_id)


async def review_over(api: httpx.AsyncClient, run_id: str) -> None:
    """Wait until the run is past the review and the sending (nothing was approved), so that
    deleting the test's rows races no service."""
    run = await wait_for_run(
        api, run_id, lambda r: r["state"] not in {"await_review", "await_sending"}
    )
    assert run["state"] == "monitoring", run


async def test_an_edit_is_saved_without_a_decision_and_the_approval_sends_it(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    run_id, drafts = await campaign_at_review(api, db, tag, 3)
    first, second, third = drafts
    footer = footer_text_of(first["body"]).rstrip()
    edit_url = f"/api/campaigns/{run_id}/emails/{first['email_id']}/edit"

    new_body = "Hi Person0,\n\nSaved before deciding.\n\nSam"
    saved = await api.post(edit_url, json={"subject": "Coffee first?", "body": new_body})
    assert saved.status_code == 200, saved.text
    view = saved.json()
    assert (view["status"], view["edited"], view["subject"]) == ("drafted", True, "Coffee first?")
    assert (view["reviewed_by"], view["reviewed_at"]) == (None, None)
    assert view["body"].startswith(new_body + "\n\n-- \n")
    assert view["body"].count(footer) == 1
    assert "counts" not in view
    listed = await list_emails(api, run_id, status="drafted")
    assert (listed[0]["subject"], listed[0]["body"], listed[0]["edited"]) == (
        "Coffee first?", view["body"], True,
    )  # fmt: skip

    # the body sent back as listed (footer included) keeps one footer; the subject stays
    again = await api.post(edit_url, json={"body": view["body"].replace("Saved", "Re-saved")})
    assert again.status_code == 200, again.text
    assert again.json()["subject"] == "Coffee first?"
    assert again.json()["body"].startswith("Hi Person0,\n\nRe-saved before deciding.")
    assert again.json()["body"].count(footer) == 1
    assert await outbox_events(db, run_id, EMAIL_APPROVED.name) == []  # an edit publishes nothing

    approved = await approve(api, run_id, first["email_id"])  # as it is now: the saved edit
    assert approved.status_code == 200, approved.text
    decided = approved.json()
    assert (decided["status"], decided["edited"], decided["reviewed_by"]) == (
        "approved", True, REVIEWER,
    )  # fmt: skip
    assert (decided["subject"], decided["body"]) == ("Coffee first?", again.json()["body"])
    assert decided["counts"] == {"drafted": 2, "approved": 1, "rejected": 0, "expired": 0}
    stored = await db.fetchrow(
        "SELECT subject, body, edited FROM campaign.emails WHERE email_id = $1",
        uuid.UUID(first["email_id"]),
    )
    assert stored is not None
    assert tuple(stored) == ("Coffee first?", again.json()["body"], True)  # what the sender sends
    approvals = await outbox_events(db, run_id, EMAIL_APPROVED.name)
    assert [(a["email_id"], a["edited"]) for a in approvals] == [(first["email_id"], True)]

    other_run, other_drafts = await campaign_at_review(api, db, tag, 1)
    before = await email_rows(db, run_id)
    outbox_before = await db.fetchval("SELECT count(*) FROM campaign.outbox")

    async def refused(url: str, status: int, text: str, **kw: Any) -> None:
        response = await api.post(url, **kw)
        assert response.status_code == status, (url, kw, response.text)
        assert text in response.text, (url, kw, response.text)

    # only a draft can be edited
    await refused(edit_url, 409, "only a drafted email can be edited", json={"body": "Later"})
    # unknown emails and campaigns, an email of another campaign
    unknown = str(uuid.uuid4())
    await refused(f"/api/campaigns/{run_id}/emails/{unknown}/edit", 404, "has no email",
                  json={"body": "x"})  # fmt: skip
    await refused(f"/api/campaigns/{unknown}/emails/{second['email_id']}/edit", 404,
                  "no campaign", json={"body": "x"})  # fmt: skip
    await refused(f"/api/campaigns/{run_id}/emails/{other_drafts[0]['email_id']}/edit", 404,
                  "has no email", json={"body": "x"})  # fmt: skip
    # the approve-with-edit validation, and an edit of nothing
    url = f"/api/campaigns/{run_id}/emails/{second['email_id']}/edit"
    await refused(url, 422, "must not be empty", json={"body": "   "})
    await refused(url, 422, "must not be empty", json={"subject": " "})
    await refused(url, 422, "one line", json={"subject": "a\nb"})
    await refused(url, 422, "bogus", json={"body": "x", "bogus": 1})
    await refused(url, 422, "at most", json={"subject": "s" * 201})
    await refused(url, 422, "apart from the footer", json={"body": footer_text_of(second["body"])})
    await refused(url, 422, "needs a subject or a body", json={})
    await refused(url, 422, "Field required", content=b"")  # no body at all
    await refused(f"/api/campaigns/{run_id}/emails/not-a-uuid/edit", 422, "email_id",
                  json={"body": "x"})  # fmt: skip
    assert await email_rows(db, run_id) == before
    assert await db.fetchval("SELECT count(*) FROM campaign.outbox") == outbox_before

    rejected = await api.post(f"/api/campaigns/{run_id}/emails/{third['email_id']}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["counts"] == {"drafted": 1, "approved": 1, "rejected": 1, "expired": 0}
    await refused(f"/api/campaigns/{run_id}/emails/{third['email_id']}/edit", 409, "is rejected",
                  json={"subject": "Too late"})  # fmt: skip
    assert other_run != run_id


async def test_the_campaign_knows_its_review_deadline(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    before = datetime.now().astimezone()
    run_id, _ = await campaign_at_review(api, db, tag, 1, review_hours=2)
    run = await wait_for_run(api, run_id, lambda r: True)
    expected = datetime.fromisoformat(run["waiting_for"]["deadline_at"])
    assert (
        before + timedelta(hours=2) <= expected <= datetime.now().astimezone() + timedelta(hours=2)
    )

    async def deadline() -> str | None:
        response = await api.get(f"/api/campaigns/{run_id}")
        assert response.status_code == 200, response.text
        value: str | None = response.json()["review_deadline_at"]
        return value

    # recorded from the run's progress event, soon after the run starts waiting
    assert datetime.fromisoformat(await wait_for(deadline, what="the deadline")) == expected
    campaign = (await api.get(f"/api/campaigns/{run_id}")).json()
    listed = await api.get("/api/campaigns", params={"job_id": campaign["job"]["job_id"]})
    assert listed.status_code == 200, listed.text
    [summary] = listed.json()["items"]
    assert datetime.fromisoformat(summary["review_deadline_at"]) == expected

    # it stays the deadline the review had once the review is over
    done = await api.post(f"/api/campaigns/{run_id}/reject-all")
    assert done.status_code == 200, done.text
    await review_over(api, run_id)
    after = (await api.get(f"/api/campaigns/{run_id}")).json()
    assert after["status"] == "monitoring"
    assert datetime.fromisoformat(after["review_deadline_at"]) == expected


async def test_every_edit_is_kept_as_a_revision(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str
) -> None:
    run_id, (first, second) = await campaign_at_review(api, db, tag, 2)
    revisions_url = f"/api/campaigns/{run_id}/emails/{first['email_id']}/revisions"
    assert (await api.get(revisions_url)).json() == {"email_id": first["email_id"], "items": []}

    edit_url = f"/api/campaigns/{run_id}/emails/{first['email_id']}/edit"
    assert (await api.post(edit_url, json={"subject": "Coffee?"})).status_code == 200
    assert (await api.post(edit_url, json={"subject": "Coffee?"})).status_code == 200  # no change
    edited = await approve(api, run_id, first["email_id"], subject="Coffee this week?")
    assert edited.status_code == 200, edited.text

    response = await api.get(revisions_url)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(r["revision"], r["subject"], r["edited_by"]) for r in items] == [
        (0, first["subject"], "template"),
        (1, "Coffee?", REVIEWER),
        (2, "Coffee this week?", REVIEWER),
    ]
    assert items[0]["body"] == first["body"]  # the text as drafted, kept
    assert items[2]["body"] == edited.json()["body"]

    untouched = await api.get(f"/api/campaigns/{run_id}/emails/{second['email_id']}/revisions")
    assert untouched.json()["items"] == []
    unknown = await api.get(f"/api/campaigns/{run_id}/emails/{uuid.uuid4()}/revisions")
    assert unknown.status_code == 404, unknown.text
