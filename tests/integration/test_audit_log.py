"""The audit log through the gateway, with the real workflow and campaign services: a campaign's
pause, resume, edit (text before and after), approve, reject, approve-all and cancel, and its
run's cancel, each recorded once with who asked and the request's trace id; key changes; a refused
change records nothing; `GET /api/audit` is the admin's, and its filters and cursor work.

The session database is shared: every test makes its own job, candidates, keys and users.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import MakeKey, start_campaign, wait_for, wait_for_run, wait_for_state
from tests.support.campaign_rows import QUICK_SENDING, add_audience, add_candidate
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

RECRUITER = "ria-recruiter"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def module_smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(module_smtp: SmtpTestServer) -> Stack:
    return Stack(
        {"workflow": QUICK_SENDING, "campaign": {**QUICK_SENDING, **module_smtp.env}},
        user=RECRUITER,
        scopes=("workflows", "review"),
    )


@dataclass(frozen=True)
class Admin:
    """A client with an admin key, and the key's user."""

    http: httpx.AsyncClient
    user: str


@pytest.fixture
async def admin(gateway: Gateway, make_key: MakeKey) -> AsyncIterator[Admin]:
    """An admin of the test's own."""
    user = f"admin-{secrets.token_hex(4)}"
    async with gateway.client(await make_key("admin", user=user)) as client:
        yield Admin(client, user)


def traced() -> tuple[str, dict[str, str]]:
    """A new trace id, and the `traceparent` header that makes a request part of it."""
    trace_id = secrets.token_hex(16)
    return trace_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


async def audit(admin: Admin, **query: Any) -> dict[str, Any]:
    response = await admin.http.get("/api/audit", params=query)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def entries_until(admin: Admin, wanted: Counter[str], **query: Any) -> list[dict[str, Any]]:
    """The entries `query` finds (one page of 200), once they hold at least the `wanted` count
    of each action."""

    async def check() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await audit(admin, limit=200, **query))["items"]
        have = Counter(e["action"] for e in items)
        return items if all(have[a] >= n for a, n in wanted.items()) else None

    found: list[dict[str, Any]] = await wait_for(check, timeout=30, what=f"audit entries {wanted}")
    return found


async def post(api: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    response = await api.post(url, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def campaign_in_review(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, size: int
) -> tuple[str, list[dict[str, Any]]]:
    audience = await add_audience(db, tag, size)
    run_id = await start_campaign(api, {**audience.slots, "limit": size})
    await wait_for_state(api, run_id, "await_review")
    response = await api.get(f"/api/campaigns/{run_id}/emails", params={"status": "drafted"})
    assert response.status_code == 200, response.text
    drafts: list[dict[str, Any]] = response.json()["items"]
    assert len(drafts) == size
    return run_id, drafts


async def test_a_campaigns_decisions_are_recorded_once_with_who_and_the_trace(
    api: httpx.AsyncClient, admin: Admin, db: asyncpg.Pool, tag: str
) -> None:
    run_id, drafts = await campaign_in_review(api, db, tag, 3)
    first, second, third = (d["email_id"] for d in drafts)
    base = f"/api/campaigns/{run_id}"

    # Paused during the review, so that nothing is sent while the test decides.
    await post(api, f"{base}/pause")
    await post(api, f"{base}/resume")
    assert (await post(api, f"{base}/pause"))["changed"]
    assert not (await post(api, f"{base}/pause"))["changed"]  # again: no change, no entry
    edit_trace, edit_headers = traced()
    subject = f"A role for you, {tag}"
    await post(api, f"{base}/emails/{first}/edit", json={"subject": subject}, headers=edit_headers)
    await post(api, f"{base}/emails/{first}/approve")
    await post(api, f"{base}/emails/{first}/approve")  # again: no change, no entry
    await post(api, f"{base}/emails/{second}/reject")
    bulk = await post(api, f"{base}/approve-all")
    assert bulk["decided"] == 1
    cancel_trace, cancel_headers = traced()
    assert (await post(api, f"{base}/cancel", headers=cancel_headers))["changed"]

    wanted = Counter(
        {
            "campaign.paused": 2,
            "campaign.resumed": 1,
            "email.edited": 1,
            "email.approved": 1,
            "email.rejected": 1,
            "emails.approved_all": 1,
            "campaign.cancelled": 1,
            "run.cancelled": 1,
        }
    )
    entries = await entries_until(admin, wanted, object_id=run_id)
    assert Counter(e["action"] for e in entries) == wanted  # each once: nothing else, no copies
    for entry in entries:
        assert entry["actor"] == RECRUITER, entry
        assert HEX32.match(entry["trace_id"] or ""), entry
        assert run_id in (entry["campaign_id"], entry["run_id"]), entry
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True)  # newest first
    by_action = {e["action"]: e for e in entries}

    edited = by_action["email.edited"]
    assert (edited["object_type"], edited["object_id"]) == ("email", first)
    assert edited["trace_id"] == edit_trace
    before, after = edited["detail"]["before"], edited["detail"]["after"]
    assert before["subject"] == drafts[0]["subject"] != subject
    assert after["subject"] == subject
    assert after["body"] == before["body"] == drafts[0]["body"]
    assert by_action["email.approved"]["object_id"] == first
    assert by_action["email.rejected"]["object_id"] == second
    assert by_action["emails.approved_all"]["detail"] == {"decision": "approve", "decided": 1}
    assert by_action["emails.approved_all"]["object_id"] == run_id
    cancelled = by_action["campaign.cancelled"]
    assert cancelled["trace_id"] == cancel_trace
    assert cancelled["detail"]["emails_cancelled"] >= 1  # the approved ones not sent (paused)
    run_cancelled = by_action["run.cancelled"]
    assert (run_cancelled["object_type"], run_cancelled["object_id"]) == ("run", run_id)
    assert run_cancelled["trace_id"] == cancel_trace  # the gateway asked both in one request
    # Filters: by action, by actor, by object (an email's own id finds its entries only).
    [only] = (await audit(admin, action="email.rejected", object_id=run_id))["items"]
    assert only["object_id"] == second
    own = (await audit(admin, object_id=first))["items"]
    assert {e["action"] for e in own} == {"email.edited", "email.approved"}
    mine = (await audit(admin, actor=RECRUITER, object_id=run_id, limit=200))["items"]
    assert len(mine) == len(entries)
    assert (await audit(admin, actor="nobody-at-all", object_id=run_id))["items"] == []
    assert third not in {e["object_id"] for e in entries}  # decided in bulk: one entry, above
    # Each entry names the team that owns the campaign (the recruiter's key's: `default`).
    assert {e["team"] for e in entries} == {"default"}


async def test_a_refused_change_records_nothing(
    api: httpx.AsyncClient, admin: Admin, db: asyncpg.Pool, tag: str
) -> None:
    run_id, drafts = await campaign_in_review(api, db, tag, 1)
    base = f"/api/campaigns/{run_id}"

    refused = await api.post(f"{base}/close")  # still in review: cancel it instead
    assert refused.status_code == 409, refused.text
    await post(api, f"{base}/cancel")
    for url in (f"{base}/approve-all", f"{base}/emails/{drafts[0]['email_id']}/approve"):
        refused = await api.post(url)
        assert refused.status_code == 409, refused.text

    # The cancel's entry follows the refused close on the same partition (key: the campaign)
    # from the same outbox: once it is there, an entry of the close would be too.
    entries = await entries_until(admin, Counter({"campaign.cancelled": 1}), object_id=run_id)
    actions = Counter(e["action"] for e in entries if e["object_type"] == "campaign")
    assert actions == Counter({"campaign.cancelled": 1})
    assert not {"emails.approved_all", "email.approved"} & {e["action"] for e in entries}


async def test_a_stopped_sequence_is_recorded_once(
    api: httpx.AsyncClient, admin: Admin, db: asyncpg.Pool, tag: str
) -> None:
    audience = await add_audience(db, tag, 1)
    run_id = await start_campaign(api, {**audience.slots, "limit": 1}, follow_up_days=[2])
    await wait_for_state(api, run_id, "await_review")
    email_id = (await api.get(f"/api/campaigns/{run_id}/emails")).json()["items"][0]["email_id"]
    url = f"/api/campaigns/{run_id}/emails/{email_id}/stop-sequence"

    assert (await post(api, url))["stopped"] == 1
    assert (await post(api, url))["stopped"] == 0  # nothing left to stop: no entry
    # An entry keyed by the same email after them: once it is there, so would a second stop's.
    await post(api, f"/api/campaigns/{run_id}/emails/{email_id}/approve")

    entries = await entries_until(admin, Counter({"email.approved": 1}), object_id=email_id)
    assert [e["action"] for e in entries] == ["email.approved", "sequence.stopped"]
    stopped = entries[1]
    assert (stopped["object_id"], stopped["actor"]) == (email_id, RECRUITER)
    assert stopped["detail"] == {"stopped": 1}


async def test_an_answer_to_a_runs_question_is_recorded_with_its_text(
    api: httpx.AsyncClient, admin: Admin, db: asyncpg.Pool, tag: str
) -> None:
    audience = await add_audience(db, tag, 1)
    run_id = await start_campaign(api, {**audience.slots, "job_title": "Chief Juggler"})
    await wait_for_run(api, run_id, lambda r: r.get("question") is not None)

    trace_id, headers = traced()
    url = f"/api/workflows/{run_id}/input"
    answered = await api.post(url, json={"answer": audience.title}, headers=headers)
    assert answered.status_code == 200, answered.text
    await wait_for_state(api, run_id, "await_review")
    assert (await api.post(url, json={"answer": "1"})).status_code == 409  # no question now

    entries = await entries_until(admin, Counter({"run.input_given": 1}), object_id=run_id)
    [entry] = [e for e in entries if e["action"] == "run.input_given"]
    assert (entry["object_type"], entry["run_id"], entry["actor"]) == ("run", run_id, RECRUITER)
    assert entry["detail"] == {"answer": audience.title}
    assert entry["trace_id"] == trace_id


async def test_an_erasure_and_the_emergency_stop_are_recorded_without_personal_data(
    admin: Admin, db: asyncpg.Pool, tag: str
) -> None:
    address = f"erase-me-{tag}@example.com"
    candidate_id = await add_candidate(db, f"Erin Erase {tag}", email=address)
    for _ in range(2):  # again: nothing left to erase, no entry
        erased = await admin.http.delete(f"/api/candidates/{candidate_id}")
        assert erased.status_code == 204, erased.text
    stopped = await admin.http.post("/api/sending/stop")
    assert stopped.status_code == 200, stopped.text
    resumed = await admin.http.post("/api/sending/resume")
    assert resumed.status_code == 200, resumed.text

    [entry] = await entries_until(
        admin, Counter({"candidate.erased": 1}), object_id=str(candidate_id)
    )
    assert (entry["object_type"], entry["actor"]) == ("candidate", admin.user)
    assert entry["detail"] == {"emails_cancelled": 0, "emails_erased": 0}
    assert tag not in str(entry)  # the id and counts only: not the name, not the address
    wanted = Counter({"sending.stopped": 1, "sending.resumed": 1})
    stop_entries = await entries_until(admin, wanted, actor=admin.user, object_id="all")
    assert [e["action"] for e in stop_entries] == ["sending.resumed", "sending.stopped"]
    stop = stop_entries[1]
    assert stop["detail"]["campaigns"] == len(stopped.json()["campaigns"])
    assert stop["detail"]["campaign_ids"] == stopped.json()["campaigns"]


async def test_key_changes_are_recorded_with_the_admin_and_the_team(
    admin: Admin, api: httpx.AsyncClient
) -> None:
    team = f"team-{secrets.token_hex(4)}"
    trace_id, headers = traced()
    created = await admin.http.post(
        "/api/keys", json={"user": "kim", "team": team, "scopes": ["review"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    key_id = created.json()["key"]["key_id"]
    assert (await admin.http.post(f"/api/keys/{key_id}/rotate", json={"grace_hours": 1})).is_success
    assert (await admin.http.delete(f"/api/keys/{key_id}")).is_success
    assert (await admin.http.delete(f"/api/keys/{key_id}")).is_success  # again: no change, no entry

    # The gateway writes these itself, in the key change's transaction: there at once.
    items = (await audit(admin, object_id=key_id))["items"]
    assert [e["action"] for e in items] == ["key.revoked", "key.rotated", "key.created"]
    for entry in items:
        assert (entry["object_type"], entry["actor"], entry["team"]) == ("key", admin.user, team)
        assert HEX32.match(entry["trace_id"] or ""), entry
    created_entry = items[-1]
    assert created_entry["trace_id"] == trace_id
    assert created_entry["detail"]["scopes"] == ["review"]
    secret = created.json()["token"].split("_", 2)[2]
    assert secret not in str(items)  # never the key's secret
    assert (await audit(admin, team=team))["items"] == items

    # Only an admin reads the log.
    forbidden = await api.get("/api/audit")
    assert forbidden.status_code == 403, forbidden.text


async def test_the_filters_and_the_cursor_page_through_the_log(admin: Admin) -> None:
    team = f"team-{secrets.token_hex(4)}"
    key_ids = []
    for n in range(5):
        response = await admin.http.post(
            "/api/keys", json={"user": f"user-{n}", "team": team, "scopes": ["assistant"]}
        )
        assert response.status_code == 201, response.text
        key_ids.append(response.json()["key"]["key_id"])
    assert (await admin.http.post(f"/api/keys/{key_ids[0]}/rotate")).is_success

    everything = (await audit(admin, actor=admin.user))["items"]
    assert len(everything) == 6
    assert everything[0]["action"] == "key.rotated"
    assert [e["object_id"] for e in everything[1:]] == key_ids[::-1]  # newest first

    pages, cursor = [], None
    while True:
        query: dict[str, Any] = {"actor": admin.user, "limit": 2}
        page = await audit(admin, **query, **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [e for p in pages for e in p] == everything

    created = (await audit(admin, actor=admin.user, action="key.created"))["items"]
    assert [e["object_id"] for e in created] == key_ids[::-1]
    assert (await audit(admin, team=team))["items"] == everything
    middle = datetime.fromisoformat(everything[2]["at"])
    since = (await audit(admin, team=team, since=middle.isoformat()))["items"]
    until = (await audit(admin, team=team, until=middle.isoformat()))["items"]
    assert since == everything[:3]
    assert until == everything[3:]
    later = (middle + timedelta(days=1)).isoformat()
    assert (await audit(admin, team=team, since=later))["items"] == []

    for query in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": 201}, {"action": "x.y"}):
        response = await admin.http.get("/api/audit", params=query)
        assert response.status_code == 422, (query, response.text)
