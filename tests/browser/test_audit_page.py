"""The audit page in Chromium, against the real workflow and campaign services: a recruiter of a
team of the test's own edits a draft and pauses the campaign through the API; an admin signs in,
finds the audit page in the menu, sees the edit's subject and body before and after side by side,
filters by action (kept in the URL), and sees the team in the runs and campaigns lists and pages;
a recruiter's key gets the forbidden page for /app/audit and no link to it."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.support import assert_accessible, screenshot
from tests.browser.test_assistant_page import sign_in
from tests.support.api import MakeKey, start_campaign, wait_for, wait_for_state
from tests.support.campaign_rows import add_audience
from tests.support.stack import Gateway, Stack

pytestmark = [pytest.mark.browser, pytest.mark.integration]

RECRUITER = "browser-auditee"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack({"workflow": {}, "campaign": {}}, user=RECRUITER, scopes=("workflows", "review"))


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_an_admin_reads_the_audit_log_and_a_recruiter_cannot(
    page: Page, gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool, tag: str, tmp_path: Path
) -> None:
    team = f"team-{tag}"
    recruiter_key = await make_key("workflows", "review", user=RECRUITER, team=team)
    admin_key = await make_key("admin", user=f"admin-{secrets.token_hex(4)}", team="ops")

    # The recruiter's campaign, through the API: one draft edited (subject only), then paused.
    audience = await add_audience(db, tag, 2)
    async with gateway.client(recruiter_key) as recruiter:
        run_id = await start_campaign(recruiter, {**audience.slots, "limit": 2})
        await wait_for_state(recruiter, run_id, "await_review")
        drafts = (ok(await recruiter.get(f"/api/campaigns/{run_id}/emails")))["items"]
        draft = drafts[0]
        subject = f"A better subject <b>{tag}</b>"  # markup in data must show as text
        ok(
            await recruiter.post(
                f"/api/campaigns/{run_id}/emails/{draft['email_id']}/edit",
                json={"subject": subject},
            )
        )
        ok(await recruiter.post(f"/api/campaigns/{run_id}/pause"))
    async with gateway.client(admin_key) as admin:  # entries arrive through Kafka: wait for both

        async def both() -> bool:
            page_ = ok(await admin.get("/api/audit", params={"object_id": run_id}))
            actions = {e["action"] for e in page_["items"]}
            return {"email.edited", "campaign.paused"} <= actions

        await wait_for(both, timeout=30, what="the edit's and the pause's audit entries")

    # The admin: the menu has the audit page; the object filter comes from the URL.
    await sign_in(page, gateway, admin_key, f"/app/audit?object_id={run_id}")
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    menu = page.get_by_role("navigation", name="Main")
    await expect(menu.get_by_role("link", name="Audit")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_label("Object id")).to_have_value(run_id)
    rows = page.locator("#audit-rows > tr")  # not the rows of the tables inside
    await expect(rows.filter(has_text="campaign.paused")).to_have_count(1)
    await expect(rows.filter(has_text="email.edited")).to_have_count(1)
    await expect(rows).to_have_count(2)  # this campaign's entries only

    # Filter by action: the URL keeps it, and only the edit is left, with its before and after.
    await page.get_by_label("Action").select_option("email.edited")
    await expect(page).to_have_url(re.compile(r"[?&]action=email\.edited(&|$)"))
    await expect(rows).to_have_count(1)
    edit = rows.first
    await expect(edit.locator(":scope > td").nth(1)).to_have_text(RECRUITER)
    await expect(edit.locator(":scope > td").nth(2)).to_have_text(team)
    diff = edit.locator("table.diff")
    subject_row = diff.get_by_role("row").filter(has=page.get_by_role("rowheader", name="subject"))
    await expect(subject_row.locator("td.before")).to_have_text(draft["subject"])
    await expect(subject_row.locator("td.after")).to_have_text(subject)  # as text, not markup
    await expect(subject_row.locator(".badge")).to_have_text("changed")
    body_row = diff.get_by_role("row").filter(has=page.get_by_role("rowheader", name="body"))
    await expect(body_row.locator("td.before")).to_have_count(0)  # the same: one cell, folded
    await expect(body_row.locator(".badge")).to_have_count(0)  # no "changed" badge
    await body_row.get_by_text("Unchanged").click()
    await expect(body_row.locator("td.same .text")).to_have_text(draft["body"])
    await expect(body_row.locator("td.same .text")).to_be_visible()
    await expect(diff.locator("b")).to_have_count(0)
    campaign_link = edit.get_by_role("link", name=re.compile(rf"campaign .*{run_id}"))
    await expect(campaign_link).to_have_attribute("href", f"/app/campaigns/{run_id}")
    await assert_accessible(page)
    await screenshot(page, "audit", tmp_path)

    # A reload keeps the filters (they are in the URL).
    await page.reload()
    await expect(page.get_by_label("Action")).to_have_value("email.edited")
    await expect(rows).to_have_count(1)

    # The admin sees the recruiter's team on the run page and in the runs list.
    await page.goto(f"{gateway.base_url}/app/runs/{run_id}")
    await expect(page.locator("#run-facts")).to_contain_text(f"Team{team}")
    await page.goto(f"{gateway.base_url}/app/runs")
    run_row = page.locator("#run-rows tr").filter(has_text=run_id[:8])
    await expect(run_row.get_by_role("cell", name=team, exact=True)).to_be_visible()
    await page.goto(f"{gateway.base_url}/app/campaigns")
    link = page.locator(f'a[href="/app/campaigns/{run_id}"]')
    campaign_row = page.locator("#campaign-rows tr").filter(has=link)
    await expect(campaign_row.get_by_role("cell", name=team, exact=True)).to_be_visible()
    await page.goto(f"{gateway.base_url}/app/campaigns/{run_id}")
    await expect(page.locator("#campaign-meta")).to_contain_text(f"Team: {team}.")

    # A recruiter's key: no link to the audit page, and the forbidden page if it opens it.
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, gateway, recruiter_key, "/app/campaigns")
    await expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    await expect(menu.get_by_role("link", name="Campaigns")).to_be_visible()
    await expect(menu.get_by_role("link", name="Audit")).to_have_count(0)
    forbidden = await page.goto(f"{gateway.base_url}/app/audit")
    assert forbidden is not None
    assert forbidden.status == 403
    await expect(page.get_by_role("heading", name="Not for this key")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("admin scope")
    await expect(page.locator("#audit-rows")).to_have_count(0)
