"""Opens and clicks from a real email: the campaign service sends an approved email to a real SMTP
server, and the test acts as the recipient's mail client on what arrived: the HTML part's pixel,
fetched from the gateway, counts an open; a link in it redirects to the original URL and counts a
click; the unsubscribe link stays direct. With TRACK_OPENS_AND_CLICKS=false the email is plain
text only.

Each test writes its own job, candidate, campaign and approved email, marked with a fresh tag, and
deletes them afterwards; each runs its own campaign service (a sender takes every due email).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any, cast

import asyncpg
import pytest

from services.campaign.domain.links import TrackingLinks, UnsubscribeLinks
from services.gateway.routes_tracking import PIXEL
from shared.settings import Settings
from tests.support.api import MakeKey, wait_for
from tests.support.campaign_rows import Email, make_campaign
from tests.support.html import Tags, tags
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Gateway, Launcher

pytestmark = pytest.mark.integration

UNSUBSCRIBE_SECRET = "tracking-links-unsubscribe-secret-" + "z" * 16
SENDER_ENV = {
    "SEND_RATE_PER_SECOND": "0",
    "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
    "SEND_POLL_SECONDS": "0.2",
    "UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
}


def start_stack(launcher: Launcher, smtp: SmtpTestServer, **env: str) -> Gateway:
    """The gateway, and a campaign service whose public links point at it."""
    gateway = launcher.gateway()
    launcher.service_within(
        "campaign",
        60,
        {
            **SENDER_ENV,
            **smtp.env,
            "PUBLIC_BASE_URL": gateway.base_url,
            **env,
        },
    )
    return gateway


async def approve_one(db: asyncpg.Pool, settings: Settings, base_url: str, tag: str) -> Email:
    """A campaign in 'sending' with one approved email carrying a job link, stored as the drafting
    step stores it (footer included), so the sender takes it at its next poll."""
    links = UnsubscribeLinks(base_url, UNSUBSCRIBE_SECRET)
    campaign = await make_campaign(db, tag, {"ada": "approved"}, settings=settings, links=links)
    [email] = campaign.emails
    return email


def html_of(message: EmailMessage) -> Tags:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "the message has no text/html part"
    return tags(cast(str, cast(EmailMessage, part).get_content()))


async def received_and_sent(smtp: SmtpTestServer, db: asyncpg.Pool, email: Email) -> EmailMessage:
    await smtp.wait_for_messages(1, timeout=30)
    [received] = smtp.messages_to(email.address)

    async def sent() -> bool:
        status = await db.fetchval(
            "SELECT status FROM campaign.emails WHERE email_id = $1", email.email_id
        )
        return bool(status == "sent")

    await wait_for(sent, what="the email to be recorded as sent")
    return received.message


async def test_the_pixel_and_a_link_of_a_sent_email_count_an_open_and_a_click(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    make_key: MakeKey,
    tag: str,
) -> None:
    gateway = start_stack(launcher, smtp)
    email = await approve_one(db, prepared, gateway.base_url, tag)
    message = await received_and_sent(smtp, db, email)

    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert f"(<b>remote</b>): {email.link}." in cast(str, cast(EmailMessage, plain).get_content())
    html = html_of(message)
    tracking = TrackingLinks(gateway.base_url, UNSUBSCRIBE_SECRET)
    unsubscribe = UnsubscribeLinks(gateway.base_url, UNSUBSCRIBE_SECRET).url(email.email_id)
    assert html.images == [tracking.open_pixel(email.email_id)]
    assert html.hrefs == [tracking.click(email.email_id, email.link), unsubscribe]

    async with gateway.client(await make_key("review")) as api, gateway.client() as mail_client:

        async def counts() -> dict[str, int]:
            response = await api.get(f"/api/campaigns/{email.campaign_id}")
            assert response.status_code == 200, response.text
            return cast(dict[str, int], response.json()["counts"])

        assert (await counts())["opened"] == 0
        pixel = await mail_client.get(html.images[0])
        assert (pixel.status_code, pixel.content) == (200, PIXEL)
        assert (await wait_for(lambda: _count(counts, "opened"), what="the open"))["opened"] == 1

        assert (await counts())["clicked"] == 0
        click = await mail_client.get(html.hrefs[0])
        assert click.status_code == 302, click.text
        assert click.headers["location"] == email.link
        after = await wait_for(lambda: _count(counts, "clicked"), what="the click")
        assert (after["opened"], after["clicked"], after["sent"]) == (1, 1, 1)

        # The unsubscribe link goes straight to the unsubscribe page, untracked.
        page = await mail_client.get(html.hrefs[1])
        assert page.status_code == 200
    kinds = await db.fetch(
        "SELECT kind, detail ->> 'url' AS url FROM campaign.delivery_events"
        " WHERE email_id = $1 AND kind IN ('opened', 'clicked') ORDER BY id",
        email.email_id,
    )
    assert [(row["kind"], row["url"]) for row in kinds] == [
        ("opened", None),
        ("clicked", email.link),
    ]


async def _count(counts: Callable[[], Awaitable[dict[str, int]]], name: str) -> Any:
    got = await counts()
    return got if got[name] else None


async def test_with_tracking_turned_off_the_email_is_plain_text_only(
    launcher: Launcher, smtp: SmtpTestServer, db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    gateway = start_stack(launcher, smtp, TRACK_OPENS_AND_CLICKS="false")
    email = await approve_one(db, prepared, gateway.base_url, tag)
    message = await received_and_sent(smtp, db, email)
    assert message.get_content_type() == "text/plain"
    assert message.get_body(preferencelist=("html",)) is None
    assert email.link in cast(str, message.get_content())
    assert b"/t/o/" not in smtp.messages[0].data
