"""A recruiter's campaign from start to finish in Chromium, against the real stack with no model
(template mode) and an SMTP server of the test's own: request a campaign in the assistant, answer
the run's question ("which job?") in the chat, review with the keyboard (edit one, reject one,
approve the rest), see the emails arrive and the campaign page's counts move; every page checked
with axe-core and photographed for the README; a request without the CSRF token refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.browser.support import assert_accessible, screenshot
from tests.browser.test_assistant_page import sign_in
from tests.support.api import MakeKey
from tests.support.campaign_rows import QUICK_SENDING, add_candidate, add_job, letters
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Gateway, Stack

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(mailbox: SmtpTestServer) -> Stack:
    return Stack(
        {"intent": {}, "workflow": QUICK_SENDING, "campaign": {**QUICK_SENDING, **mailbox.env}},
        user="browser-campaigner",
        scopes=("assistant", "workflows", "review"),
    )


async def test_request_answer_review_and_watch_a_campaign(
    page: Page,
    gateway: Gateway,
    make_key: MakeKey,
    db: asyncpg.Pool,
    mailbox: SmtpTestServer,
    tag: str,
) -> None:
    addresses = [f"cand{n}-{tag}@example.com" for n in range(3)]
    for n, address in enumerate(addresses):
        await add_candidate(
            db, f"Cand{n} {tag}", email=address, first_name=f"Cand{n}", seniority="senior",
            years=50 - n, skills=["python"],
        )  # fmt: skip
    title = f"Basket Browser Engineer {letters(tag)}"
    await add_job(db, title, skills=["python"], external_ref=tag)
    key = await make_key("assistant", "workflows", "review", user="browser-campaigner")

    await sign_in(page, gateway, key)
    await expect(page.locator("#no-model")).to_be_visible()  # and campaigns still work
    message = (
        "email the 3 best senior python devs in Berlin about the Underwater Basket Weaver role"
    )
    await page.get_by_label("Message").fill(message)
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".intent-card").first).to_contain_text("email_campaign")
    await expect(page.locator(".bubble.assistant").last).to_contain_text(
        "Which open job", timeout=20_000
    )
    await expect(page.locator(".bubble.assistant").last).to_contain_text(title)

    await page.get_by_label("Message").fill("1")
    await page.get_by_label("Message").press("Enter")
    await expect(page.locator(".bubble.assistant").last).to_contain_text("goes on with your answer")
    review_link = page.get_by_role("link", name="review the drafts")
    await expect(review_link).to_be_visible(timeout=30_000)
    await screenshot(page, "assistant-campaign")
    await review_link.click()

    await expect(page).to_have_url(re.compile(r"/app/campaigns/[0-9a-f-]+/review$"))
    campaign_id = page.url.rsplit("/", 2)[-2]
    await expect(page.locator("#progress-label")).to_contain_text("Reviewed 0 of 3")
    await expect(page.get_by_label("Subject")).not_to_have_value("")
    await assert_accessible(page)
    await screenshot(page, "review")

    # The first draft: edit it with the keyboard, then approve it with the edit.
    await page.keyboard.press("e")
    await expect(page.get_by_label("Body")).to_be_focused()
    edited = f"Hello from the review page, {tag}."
    await page.get_by_label("Body").fill(edited)
    await page.keyboard.press("Escape")
    await page.keyboard.press("a")
    await expect(page.locator("#progress-label")).to_contain_text("Reviewed 1 of 3")
    # The second: reject it; the third: approve it.
    await page.keyboard.press("r")
    await expect(page.locator("#progress-label")).to_contain_text("Reviewed 2 of 3")
    await page.keyboard.press("a")
    await expect(page.locator("#progress-label")).to_contain_text("Reviewed 3 of 3")

    arrived = await mailbox.wait_for_messages(2, timeout=30)
    received = {m.rcpt_tos[0]: m for m in arrived}
    assert set(received) == {addresses[0], addresses[2]}  # the rejected one never leaves
    assert edited in received[addresses[0]].body

    await page.goto(f"{gateway.base_url}/app/campaigns/{campaign_id}")
    funnel = page.locator("#funnel")
    await expect(funnel).to_contain_text("Sent")
    await expect(funnel.get_by_label(re.compile(r"^sent: 2 of", re.IGNORECASE))).to_be_visible(
        timeout=20_000
    )
    await expect(page.locator("#timeline-chart svg")).to_have_attribute(
        "aria-label", re.compile(r"now 2 sent")
    )  # the funnel over time, once the timeline reloads after the counts moved
    await assert_accessible(page)
    await screenshot(page, "campaign")

    # The same API as anyone: without the page's CSRF token a change is refused.
    status = await page.evaluate(
        f"fetch('/api/campaigns/{campaign_id}/pause', {{method: 'POST'}}).then(r => r.status)"
    )
    assert status == 403

    for path, name, heading in (
        ("/app/campaigns", "campaigns", "Campaigns"),
        ("/app/runs", "runs", "Runs"),
        (f"/app/runs/{campaign_id}", "run", None),
    ):
        await page.goto(f"{gateway.base_url}{path}")
        if heading:
            await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await assert_accessible(page)
        await screenshot(page, name)
