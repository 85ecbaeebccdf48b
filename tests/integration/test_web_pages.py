"""The web app's campaign, review and run pages, through the gateway, with the real workflow and
campaign services: a browser signs in (the form's CSRF field and cookie, then the session
cookie), gets each page shell and its static scripts, and makes the same `/api` calls the pages'
scripts make, with the session cookie and the page's CSRF token instead of a key.

The session database is shared: every test makes its own rows, marked with a fresh tag.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from shared.settings import Settings
from tests.support.api import MakeKey, start_campaign, wait_for_run
from tests.support.campaign_rows import add_audience, make_campaign
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

USER = "web-recruiter"
SCRIPTS = ("app.js", "campaigns.js", "campaign.js", "review.js", "runs.js", "run.js")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack({"workflow": {}, "campaign": {}}, user=USER, scopes=("workflows", "review"))


def field(html: str, pattern: str) -> str:
    found = re.search(pattern, html)
    assert found, f"no {pattern!r} in the page"
    return found.group(1)


@asynccontextmanager
async def sign_in(
    gateway: Gateway, key: str, next_page: str = "/app/campaigns"
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client (no key; it keeps cookies) signed in with `key`."""
    async with gateway.client() as browser:
        form = await browser.get("/app/sign-in", params={"next": next_page})
        assert form.status_code == 200, form.text
        csrf = field(form.text, r'name="csrf" value="([^"]+)"')
        signed = await browser.post(
            "/app/sign-in", data={"csrf": csrf, "api_key": key, "next": next_page}
        )
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == next_page
        yield browser


def page_token(html: str) -> str:
    """The CSRF token the page's scripts send in X-CSRF-Token."""
    return field(html, r'<meta name="csrf-token" content="([^"]+)">')


async def test_each_page_and_its_scripts_for_a_signed_in_recruiter(
    gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool, tag: str, prepared: Settings
) -> None:
    campaign = await make_campaign(
        db, tag, {"ann": "drafted", "bob": "approved"}, settings=prepared,
        status="awaiting_review",
    )  # fmt: skip
    cid = campaign.campaign_id
    anonymous = gateway.client()
    async with anonymous:
        away = await anonymous.get(f"/app/campaigns/{cid}/review")
        assert away.status_code == 303
        assert away.headers["location"].startswith("/app/sign-in?next=")

    async with sign_in(gateway, await make_key("workflows", "review", user=USER)) as browser:
        pages = {
            "/app/campaigns": ("<h1>Campaigns</h1>", "campaigns.js"),
            f"/app/campaigns/{cid}": ('<h1 id="campaign-name">Campaign</h1>', "campaign.js"),
            f"/app/campaigns/{cid}/review": ("<h1>Review", "review.js"),
            "/app/runs": ("<h1>Runs</h1>", "runs.js"),
            f"/app/runs/{cid}": (f"<h1>Run <code>{str(cid)[:8]}</code></h1>", "run.js"),
        }
        for path, (heading, script) in pages.items():
            response = await browser.get(path)
            assert response.status_code == 200, (path, response.text)
            assert heading in response.text, path
            assert re.search(
                rf'src="/app/static/{re.escape(script)}\?v=[0-9a-f]{{12}}"', response.text
            )
            assert page_token(response.text)
        campaign_page = (await browser.get(f"/app/campaigns/{cid}")).text
        for control in ('id="pause"', 'id="resume"', 'id="cancel"', 'id="close"', "<dialog"):
            assert control in campaign_page  # a recruiter who runs workflows steers

        for name in SCRIPTS:
            served = await browser.get(f"/app/static/{name}")
            assert served.status_code == 200, name
            assert "javascript" in served.headers["content-type"], name
            assert "innerHTML" not in served.text, name  # API data is built with h(), as text
        css = await browser.get("/app/static/app.css")
        assert css.status_code == 200
        assert ".bar .track" in css.text  # this pages' section of the stylesheet


async def test_the_pages_api_calls_work_with_the_session_cookie(
    gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool, tag: str, prepared: Settings
) -> None:
    """What review.js and campaign.js do: list, approve with an edit, reject, pause; with the
    session cookie and the page's CSRF token (without it, nothing changes)."""
    campaign = await make_campaign(
        db, tag, {"ann": "drafted", "bob": "drafted", "cy": "drafted"}, settings=prepared,
        status="awaiting_review",
    )  # fmt: skip
    cid = campaign.campaign_id
    async with sign_in(gateway, await make_key("workflows", "review", user=USER)) as browser:
        token = page_token((await browser.get(f"/app/campaigns/{cid}/review")).text)
        listed = await browser.get("/api/campaigns", params={"status": "awaiting_review"})
        assert listed.status_code == 200
        assert str(cid) in {c["campaign_id"] for c in listed.json()["items"]}
        drafts = await browser.get(
            f"/api/campaigns/{cid}/emails", params={"status": "drafted", "limit": 50}
        )
        assert drafts.status_code == 200
        ann, bob, cy = drafts.json()["items"]
        assert {"to_address", "rank", "candidate_id", "subject", "body"} <= ann.keys()

        forged = await browser.post(f"/api/campaigns/{cid}/emails/{ann['email_id']}/reject")
        assert forged.status_code == 403  # no CSRF token: refused
        assert "CSRF" in forged.json()["detail"]

        headers = {"X-CSRF-Token": token}
        edited = await browser.post(
            f"/api/campaigns/{cid}/emails/{ann['email_id']}/approve",
            json={"subject": "A better subject"},
            headers=headers,
        )
        assert edited.status_code == 200, edited.text
        assert (edited.json()["status"], edited.json()["edited"]) == ("approved", True)
        rejected = await browser.post(
            f"/api/campaigns/{cid}/emails/{bob['email_id']}/reject", headers=headers
        )
        assert rejected.json()["status"] == "rejected"
        again = await browser.post(
            f"/api/campaigns/{cid}/emails/{bob['email_id']}/approve", headers=headers
        )
        assert again.status_code == 409
        assert again.json()["detail"]

        view = (await browser.get(f"/api/campaigns/{cid}")).json()
        counts = view["counts"]
        assert (counts["drafted"], counts["approved"], counts["rejected"]) == (1, 1, 1)
        paused = await browser.post(f"/api/campaigns/{cid}/pause", headers=headers)
        assert paused.status_code == 200, paused.text
        assert paused.json()["campaign"]["paused"] is True

        remaining = await browser.post(f"/api/campaigns/{cid}/reject-all", headers=headers)
        assert remaining.status_code == 200, remaining.text
        assert remaining.json()["decided"] == 1
        assert remaining.json()["review"]["drafted"] == 0
        assert cy["email_id"] == remaining.json()["items"][0]["email_id"]


async def test_a_review_only_key_sees_no_runs_and_no_steering(
    gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool, tag: str, prepared: Settings
) -> None:
    campaign = await make_campaign(
        db, tag, {"ann": "drafted"}, settings=prepared, status="awaiting_review"
    )
    cid = campaign.campaign_id
    async with sign_in(gateway, await make_key("review", user="web-reviewer")) as browser:
        runs = await browser.get("/app/runs")
        assert runs.status_code == 403
        assert "workflows scope" in runs.text
        page = await browser.get(f"/app/campaigns/{cid}")
        assert page.status_code == 200
        assert 'id="pause"' not in page.text
        assert "/app/runs/" not in page.text
        assert f'href="/app/campaigns/{cid}/review"' in page.text
        review = await browser.get(f"/app/campaigns/{cid}/review")
        assert review.status_code == 200
        assert 'data-can-see-run="no"' in review.text  # the deadline needs the run: not shown


async def test_the_run_page_of_a_campaign_waiting_for_review_and_its_deadline(
    api: httpx.AsyncClient, gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool, tag: str
) -> None:
    """The run page's data (RunDetail: steps with attempts and durations) and the review
    deadline the review page reads from the campaign's run."""
    audience = await add_audience(db, tag, 2)
    run_id = await start_campaign(api, audience.slots, review_hours=2)
    run = await wait_for_run(api, run_id, lambda r: r["status"] != "running")
    assert (run["status"], run["state"]) == ("waiting", "await_review"), run.get("error")

    async with sign_in(gateway, await make_key("workflows", "review", user=USER)) as browser:
        assert (await browser.get(f"/app/runs/{run_id}")).status_code == 200
        detail = (await browser.get(f"/api/workflows/{run_id}")).json()
        assert detail["waiting_for"]["signal"] == "review_finished"
        assert detail["waiting_for"]["deadline_at"]
        assert all(step["status"] == "succeeded" for step in detail["steps"])
        assert all(step["duration_ms"] is not None for step in detail["steps"])
        campaign = (await browser.get(f"/api/campaigns/{run_id}")).json()
        assert campaign["run_id"] == run_id
        listed = await browser.get("/api/workflows", params={"type": "email_campaign"})
        assert run_id in {r["run_id"] for r in listed.json()["items"]}
        bogus = await browser.get(f"/app/runs/{uuid.uuid4()}")
        assert bogus.status_code == 200  # a shell: its script shows the API's 404 message
