"""Campaign monitoring through the real gateway and campaign service: the tracking pixel, the click
redirect, unsubscribe (then a new campaign skips the address), the delivery-events webhook, and
the counts, once and as an event stream.

Each test writes its own job, candidates, campaign and sent emails straight into the shared
database, marked with a fresh tag, and deletes them afterwards. Their addresses are in mixed case:
what is stored by address is stored lower-case.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from services.campaign.domain.links import TrackingLinks, UnsubscribeLinks
from services.campaign.repository.candidates import extract_candidates
from services.gateway.routes_tracking import PIXEL
from shared.contracts.intent import Slots
from shared.settings import Settings
from tests.support.api import MakeKey, sse_events
from tests.support.campaign_rows import Campaign, Email, add_job, make_campaign
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

UNSUBSCRIBE_SECRET = "integration-unsubscribe-secret-" + "x" * 16
WEBHOOK_SECRET = "integration-webhook-secret-" + "y" * 16


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The campaign service and the gateway with their secrets; the API as a reviewer."""
    return Stack(
        {"campaign": {"UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}},
        gateway_env={"WEBHOOK_SECRET": WEBHOOK_SECRET},
        user="reviewer",
        scopes=("review",),
    )


@pytest.fixture(scope="module")
async def public(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A recipient's browser or mail client: no API key, no redirects followed."""
    async with gateway.client() as client:
        yield client


async def monitored(
    db: asyncpg.Pool,
    settings: Settings,
    tag: str,
    sent: int,
    *,
    drafted: int = 0,
    rejected: int = 0,
) -> Campaign:
    """A campaign in monitoring with `sent` sent emails (then drafted and rejected ones), each to
    its own candidate and with a link of its own plus the unsubscribe footer."""
    statuses = ["sent"] * sent + ["drafted"] * drafted + ["rejected"] * rejected
    return await make_campaign(
        db, tag, {f"person{n}": status for n, status in enumerate(statuses)},
        settings=settings, links=UnsubscribeLinks("http://127.0.0.1:8000", UNSUBSCRIBE_SECRET),
        status="monitoring", domain="Example.com",
    )  # fmt: skip


def pixel_path(email: Email) -> str:
    return TrackingLinks("", UNSUBSCRIBE_SECRET).open_pixel(email.email_id)


def click_path(email: Email, url: str) -> str:
    return TrackingLinks("", UNSUBSCRIBE_SECRET).click(email.email_id, url)


def unsubscribe_path(email: Email) -> str:
    return UnsubscribeLinks("", UNSUBSCRIBE_SECRET).url(email.email_id)


async def events_of(db: asyncpg.Pool, email: Email) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.fetch(
        "SELECT kind, detail FROM campaign.delivery_events WHERE email_id = $1 ORDER BY id",
        email.email_id,
    )
    return [(row["kind"], json.loads(row["detail"])) for row in rows]


async def webhook(
    public: httpx.AsyncClient, events: list[dict[str, Any]], secret: str | None = WEBHOOK_SECRET
) -> httpx.Response:
    headers = {"X-Webhook-Secret": secret} if secret is not None else {}
    return await public.post("/api/webhooks/email-events", json={"events": events}, headers=headers)


async def test_the_pixel_records_one_open_and_is_always_a_gif(
    public: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    campaign = await monitored(db, prepared, tag, sent=1)
    email = campaign.emails[0]
    for _ in range(2):
        response = await public.get(pixel_path(email))
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.content == PIXEL
        assert "no-store" in response.headers["cache-control"]
    assert [kind for kind, _ in await events_of(db, email)] == ["opened"]  # the first open only

    # A forged token, or a click token used as a pixel, gets the same image and records nothing.
    click_token = click_path(email, email.link).split("/t/c/")[1].split("?")[0]
    for path in ["/t/o/forged.gif", f"/t/o/{click_token}.gif", "/t/o/" + "A" * 300 + ".gif"]:
        response = await public.get(path)
        assert (response.status_code, response.content) == (200, PIXEL)
    assert len(await events_of(db, email)) == 1


async def test_a_click_redirects_only_to_a_link_the_email_contains(
    public: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    campaign = await monitored(db, prepared, tag, sent=2)
    email, other = campaign.emails

    response = await public.get(click_path(email, email.link))
    assert response.status_code == 302, response.text
    assert response.headers["location"] == email.link
    assert response.headers["referrer-policy"] == "no-referrer"
    assert await events_of(db, email) == [("clicked", {"url": email.link})]

    # Another email's link, a foreign site, or no url at all: 400, no redirect, nothing recorded.
    for url in [other.link, "https://evil.example.net/phish", email.link + "&x=1"]:
        response = await public.get(click_path(email, url))
        assert response.status_code == 400, response.text
        assert "location" not in response.headers
        assert "does not contain the link" in response.json()["detail"]
    response = await public.get(click_path(email, email.link).split("?")[0])
    assert response.status_code == 400
    response = await public.get(f"/t/c/forged?url={quote(email.link, safe='')}")
    assert response.status_code == 400
    assert "not valid" in response.json()["detail"]
    assert await events_of(db, email) == [("clicked", {"url": email.link})]
    assert await events_of(db, other) == []


async def test_one_click_unsubscribe_suppresses_the_address_for_every_later_campaign(
    public: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    campaign = await monitored(db, prepared, tag, sent=2)
    leaving, staying = campaign.emails

    page = await public.get(unsubscribe_path(leaving))
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    assert "p***@example.com" in page.text
    assert not await db.fetchval(
        "SELECT count(*) FROM campaign.suppressions WHERE email = $1", leaving.address.lower()
    )  # a GET (a link scanner) changes nothing

    response = await public.post(
        unsubscribe_path(leaving),
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert "You are unsubscribed" in response.text
    row = await db.fetchrow(
        "SELECT email, reason, campaign_id FROM campaign.suppressions WHERE email = $1",
        leaving.address.lower(),
    )
    assert row is not None
    assert (row["reason"], row["campaign_id"]) == ("unsubscribed", campaign.campaign_id)
    assert await events_of(db, leaving) == [("unsubscribed", {"via": "one_click"})]

    # Again (the page's button this time): still 200, nothing new.
    again = await public.post(unsubscribe_path(leaving), content="confirm=yes")
    assert again.status_code == 200
    assert len(await events_of(db, leaving)) == 1
    assert "You are unsubscribed" in (await public.get(unsubscribe_path(leaving))).text

    # A bad token: 404 and no change.
    before = await db.fetchval("SELECT count(*) FROM campaign.suppressions")
    for path in ["/u/forged", pixel_path(staying).removesuffix(".gif").replace("/t/o/", "/u/")]:
        response = await public.post(path, content="List-Unsubscribe=One-Click")
        assert response.status_code == 404
        assert (await public.get(path)).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM campaign.suppressions") == before

    # A new campaign about another job, with no contact window: the address is skipped.
    new_campaign = uuid.uuid4()
    new_job = await add_job(db, f"Another Job {tag}", skills=[campaign.skill])
    async with db.acquire() as conn:
        found = await extract_candidates(
            conn, Slots(skills=[campaign.skill]), new_job, new_campaign, window_days=0, limit=10
        )
    assert [m.email for m in found] == [staying.address]


async def test_the_webhook_needs_its_secret(
    public: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    campaign = await monitored(db, prepared, tag, sent=1)
    email = campaign.emails[0]
    bounce = {"email_id": str(email.email_id), "kind": "bounced", "detail": {"permanent": True}}
    for secret in [None, "", "wrong", WEBHOOK_SECRET + "x", WEBHOOK_SECRET[:-1]]:
        response = await webhook(public, [bounce], secret)
        assert response.status_code == 401, response.text
    response = await webhook(public, [{"nonsense": True}], None)
    assert response.status_code == 401  # before the body is even looked at
    assert await events_of(db, email) == []
    assert (
        await db.fetchval("SELECT status FROM campaign.emails WHERE email_id = $1", email.email_id)
        == "sent"
    )
    assert not await db.fetchval(
        "SELECT count(*) FROM campaign.suppressions WHERE email = $1", email.address.lower()
    )


async def test_webhook_bounce_reply_and_complaint(
    public: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    campaign = await monitored(db, prepared, tag, sent=3)
    bounced, replied, complained = campaign.emails
    events: list[dict[str, Any]] = [
        {"message_id": bounced.message_id.strip("<>"), "kind": "bounced",
         "detail": {"permanent": True, "smtp_code": 550}, "event_id": f"evt-{tag}-1"},
        {"email_id": str(replied.email_id), "kind": "replied", "event_id": f"evt-{tag}-2"},
        {"message_id": complained.message_id, "kind": "complained"},
        {"email_id": str(uuid.uuid4()), "kind": "replied"},
        {"message_id": "<nobody@example.com>", "kind": "opened"},
    ]  # fmt: skip
    response = await webhook(public, events)
    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["accepted"], result["duplicates"]) == (3, 0)
    assert [r["index"] for r in result["rejected"]] == [3, 4]
    assert "unknown email" in result["rejected"][0]["reason"]

    assert (
        await db.fetchval(
            "SELECT status FROM campaign.emails WHERE email_id = $1", bounced.email_id
        )
        == "bounced"
    )
    suppressions = await db.fetch(
        "SELECT email, reason FROM campaign.suppressions WHERE email = ANY($1) ORDER BY reason",
        [e.address.lower() for e in campaign.emails],
    )
    assert [(r["email"], r["reason"]) for r in suppressions] == [
        (complained.address.lower(), "complaint"),
        (bounced.address.lower(), "hard_bounce"),
    ]
    assert [kind for kind, _ in await events_of(db, replied)] == ["replied"]

    # The provider sends the same events again: recorded once.
    response = await webhook(public, events[:3])
    assert response.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    total = await db.fetchval(
        "SELECT count(*) FROM campaign.delivery_events WHERE campaign_id = $1",
        campaign.campaign_id,
    )
    assert total == 3

    response = await webhook(public, [{"email_id": str(bounced.email_id), "kind": "exploded"}])
    assert response.status_code == 422


async def test_counts_and_their_event_stream(
    api: httpx.AsyncClient,
    public: httpx.AsyncClient,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    gateway: Gateway,
    make_key: MakeKey,
) -> None:
    campaign = await monitored(db, prepared, tag, sent=4, drafted=1, rejected=1)
    a, b, c, d, _, _ = campaign.emails
    url = f"/api/campaigns/{campaign.campaign_id}"

    await public.get(pixel_path(a))
    await public.get(pixel_path(a))
    await public.get(click_path(a, a.link))
    await public.get(click_path(b, b.link))
    await public.get(click_path(b, b.link))
    await public.post(unsubscribe_path(c), content="List-Unsubscribe=One-Click")
    await webhook(public, [
        {"email_id": str(d.email_id), "kind": "bounced", "detail": {"permanent": True}},
        {"email_id": str(b.email_id), "kind": "replied"},
    ])  # fmt: skip

    response = await api.get(url)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] == "monitoring"
    assert view["job"]["job_id"] == str(campaign.job_id)
    assert view["counts"] == {
        "total": 6, "drafted": 1, "approved": 4, "rejected": 1, "expired": 0, "queued": 0,
        "sent": 4, "failed": 0, "bounced": 1, "cancelled": 0, "delivered": 0, "opened": 1,
        "clicked": 2, "replied": 1, "unsubscribed": 1, "complained": 0,
    }  # fmt: skip

    assert (await api.get(f"/api/campaigns/{uuid.uuid4()}")).status_code == 404
    assert (await public.get(url)).status_code == 401
    async with gateway.client(await make_key("assistant")) as chat_only:
        assert (await chat_only.get(url)).status_code == 403

    # The stream: counts at once, again after an open, and a last time when the campaign ends.
    async with api.stream("GET", f"{url}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = counts_events(stream)
        first = await asyncio.wait_for(anext(events), 10)
        assert first["counts"]["opened"] == 1
        await public.get(pixel_path(b))
        second = await asyncio.wait_for(anext(events), 10)
        assert second["counts"]["opened"] == 2
        await db.execute(
            "UPDATE campaign.campaigns SET status = 'completed', completed_at = now()"
            " WHERE campaign_id = $1",
            campaign.campaign_id,
        )
        last = await asyncio.wait_for(anext(events), 10)
        assert last["status"] == "completed"
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), 10)  # the stream ends with the campaign

    assert (await api.get(f"/api/campaigns/{uuid.uuid4()}/events")).status_code == 404


async def counts_events(stream: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The `counts` events' data, in order."""
    async for name, data in sse_events(stream):
        if name == "counts":
            yield data


async def test_the_webhook_takes_a_signature_with_a_timestamp(
    public: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    # Imported here: this test was added to the module at its end, with what it alone uses.
    import time

    from services.gateway.errors import MAX_BODY_BYTES
    from services.gateway.signatures import header_value

    campaign = await monitored(db, prepared, tag, sent=2)
    first, second = campaign.emails
    url = "/api/webhooks/email-events"

    def signed(events: list[dict[str, Any]], secrets: list[str], age: int = 0) -> dict[str, Any]:
        body = json.dumps({"events": events}).encode()
        header = header_value(secrets, int(time.time()) - age, body)
        headers = {"X-Webhook-Signature": header, "Content-Type": "application/json"}
        return {"content": body, "headers": headers}

    bounce = [{"email_id": str(first.email_id), "kind": "bounced", "detail": {"permanent": True}}]
    refusals = {
        "wrong secret": signed(bounce, ["not-the-secret"]),
        "stale": signed(bounce, [WEBHOOK_SECRET], age=301),
        "future": signed(bounce, [WEBHOOK_SECRET], age=-301),
        "malformed": {"json": {"events": bounce}, "headers": {"X-Webhook-Signature": "v1=abc"}},
    }
    altered = signed(bounce, [WEBHOOK_SECRET])
    altered["content"] = altered["content"].replace(b"bounced", b"replied")
    refusals["altered body"] = altered
    # A bad signature is refused even beside the right shared secret.
    beside = signed(bounce, ["not-the-secret"])
    beside["headers"]["X-Webhook-Secret"] = WEBHOOK_SECRET
    refusals["bad signature, right secret"] = beside
    reasons = {}
    for case, request in refusals.items():
        response = await public.post(url, **request)
        assert response.status_code == 401, (case, response.text)
        reasons[case] = response.json()["detail"]
    assert "wrong secret" in reasons["wrong secret"]
    assert "s old, more than the 300 s allowed" in reasons["stale"]
    assert "in the future" in reasons["future"]
    assert "malformed X-Webhook-Signature" in reasons["malformed"]
    assert await events_of(db, first) == []

    # Signed with the old and the new secret (a provider rotating its secret): accepted.
    response = await public.post(url, **signed(bounce, ["old-secret", WEBHOOK_SECRET]))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert [kind for kind, _ in await events_of(db, first)] == ["bounced"]
    reply = [{"email_id": str(second.email_id), "kind": "replied"}]
    assert (await public.post(url, **signed(reply, [WEBHOOK_SECRET], age=60))).status_code == 202
    assert [kind for kind, _ in await events_of(db, second)] == ["replied"]

    # The body-size limit still holds for a signed body (read raw for the HMAC).
    big = signed([{**reply[0], "detail": {"pad": "x" * MAX_BODY_BYTES}}], [WEBHOOK_SECRET])
    assert (await public.post(url, **big)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield big["content"][:1000]
        yield big["content"][1000:]

    chunked = await public.post(url, content=chunks(), headers=big["headers"])
    assert chunked.status_code == 413
    unsigned = await public.post(url, json={"events": reply})
    assert unsigned.status_code == 401
    assert "missing X-Webhook-Signature (or X-Webhook-Secret)" in unsigned.json()["detail"]
