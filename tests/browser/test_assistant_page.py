"""The assistant page in Chromium: sign in with a key, ask a question and watch the streamed answer
(from the local OpenAI-compatible test server), search candidates, and a review-only key that
cannot reach the assistant. Each page is checked with axe-core and photographed for the README."""

from __future__ import annotations

import re
from collections.abc import Iterator

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.browser.support import assert_accessible, screenshot
from tests.support.api import MakeKey
from tests.support.campaign_rows import add_candidate
from tests.support.fake_llm import Behaviour, FakeLLM
from tests.support.stack import Gateway, Stack

pytestmark = [pytest.mark.browser, pytest.mark.integration]

MODEL = "browser-test-model"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(fake_llm: FakeLLM) -> Stack:
    llm = fake_llm.env(MODEL)
    return Stack(
        {"intent": {}, "inference": llm, "workflow": {}, "campaign": {}},
        gateway_env=llm,
        user="browser-recruiter",
        scopes=("assistant", "workflows", "review"),
    )


async def sign_in(page: Page, gateway: Gateway, key: str, path: str = "/app") -> None:
    await page.goto(f"{gateway.base_url}{path}")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def test_a_question_streams_its_answer_and_a_search_shows_candidates(
    page: Page, gateway: Gateway, make_key: MakeKey, fake_llm: FakeLLM, db: asyncpg.Pool, tag: str
) -> None:
    for n in range(2):
        await add_candidate(
            db, f"Browser Py{n} {tag}", email=f"py{n}-{tag}@example.com", seniority="senior",
            years=50 - n, skills=["python"],
        )  # fmt: skip
    key = await make_key("assistant", "workflows", "review", user="browser-recruiter")
    await sign_in(page, gateway, key)
    await expect(page).to_have_url(f"{gateway.base_url}/app/assistant")
    await expect(page.get_by_role("heading", name="Assistant")).to_be_visible()
    await expect(page.locator("#no-model")).to_have_count(0)  # a model is configured

    answer = "A reply rate of 10 to 20 percent is good for cold outreach."
    fake_llm.reset()
    fake_llm.always(Behaviour(text=answer, delay=0.05), model=MODEL)
    question = f"what is a good reply rate for outreach {tag}?"
    await page.get_by_label("Message").fill(question)
    async with page.expect_response("**/api/ai-assistant/chat") as streamed:
        await page.get_by_label("Message").press("Enter")
    response = await streamed.value
    assert response.headers["content-type"].startswith("text/event-stream")
    reply = page.locator(".bubble.assistant").last
    await expect(reply).to_have_text(answer)
    await expect(page.locator(".intent-card").last).to_contain_text("inference")
    await expect(page).to_have_url(re.compile(r"/app/assistant\?c=conv_"))  # to come back to

    await page.get_by_label("Message").fill(
        "how many senior python developers in Berlin do we have?"
    )
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".bubble.assistant").last).to_contain_text("candidates match python")
    await expect(page.locator(".intent-card").last).to_contain_text("candidate_search")
    await expect(page.locator("table").last).to_contain_text(f"Browser Py0 {tag}")
    await assert_accessible(page)
    await screenshot(page, "assistant")

    await page.reload()  # the conversation is kept: its turns come back
    await expect(page.locator(".bubble.user")).to_have_count(2)
    await expect(page.locator(".bubble.assistant").first).to_have_text(answer)


async def test_a_review_only_key_cannot_reach_the_assistant(
    page: Page, gateway: Gateway, make_key: MakeKey
) -> None:
    key = await make_key("review", user="browser-reviewer")
    await sign_in(page, gateway, key, "/app/assistant")
    await expect(page.get_by_role("heading", name="Not for this key")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("needs the assistant scope")
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(
        ["Campaigns"]
    )
    await assert_accessible(page)


async def test_the_sign_in_page_says_what_went_wrong(page: Page, gateway: Gateway) -> None:
    await sign_in(page, gateway, "rk_000000000000.wrong")
    await expect(page.get_by_role("alert")).to_contain_text("That key does not work")
    await assert_accessible(page)
    await screenshot(page, "sign-in")
