"""Follow-up sequences through the gateway, with the real workflow and campaign services and an
SMTP server: the review shows each recipient's follow-ups and approving the recipient approves
them; a follow-up goes in the first email's thread once its wait is over; a reply (reported by the
webhook) stops the replier's follow-ups and nobody else's; a person can stop one recipient's; a
cancelled campaign sends no follow-up.

The wait is working days: instead of waiting, a test moves a follow-up's due time to now, as the
calendar would, and the sender's poll finds it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import start_campaign, wait_for, wait_for_state
from tests.support.campaign_rows import QUICK_SENDING, Audience, add_audience
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "sequences-webhook-secret-" + "z" * 16


@pytest.fixture(scope="module")
def module_smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


SAM = {
    "user": "sam-sourcer",
    "name": "Sam Sourcer",
    "email": "sam@recruiting.example.com",
    "signature": "Sam Sourcer\nTalent Partner, Example Recruiting",
}


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sender identities file: the API key's user writes and sends as Sam."""
    path = tmp_path_factory.mktemp("identities") / "identities.json"
    path.write_text(json.dumps({"identities": [SAM]}))
    return path


@pytest.fixture(scope="module")
def stack(module_smtp: SmtpTestServer, identities: Path) -> Stack:
    campaign = {**QUICK_SENDING, **module_smtp.env, "SENDER_IDENTITIES_FILE": str(identities)}
    return Stack(
        {"workflow": QUICK_SENDING, "campaign": campaign},
        gateway_env={"WEBHOOK_SECRET": WEBHOOK_SECRET},
        user="sam-sourcer",
        scopes=("workflows", "review"),
    )


async def in_review(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, size: int, waits: list[int]
) -> tuple[str, Audience]:
    audience = await add_audience(db, tag, size)
    run_id = await start_campaign(api, {**audience.slots, "limit": size}, follow_up_days=waits)
    await wait_for_state(api, run_id, "await_review")
    return run_id, audience


async def review_page(api: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/api/campaigns/{run_id}/emails")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.fixture(scope="module")
async def public(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The mail provider calling the webhook: no API key."""
    async with gateway.client() as client:
        yield client


def messages_to(smtp: SmtpTestServer, address: str) -> list[EmailMessage]:
    return [m.message for m in smtp.messages if address in m.rcpt_tos]


async def follow_ups(db: asyncpg.Pool, run_id: str) -> dict[str, list[asyncpg.Record]]:
    rows = await db.fetch(
        "SELECT to_address, step, status, next_attempt_at, in_reply_to, last_error"
        " FROM campaign.emails WHERE campaign_id = $1 AND step > 0 ORDER BY step",
        uuid.UUID(run_id),
    )
    found: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        found.setdefault(row["to_address"], []).append(row)
    return found


async def make_due(db: asyncpg.Pool, run_id: str, step: int) -> None:
    """The follow-ups of `step` whose wait has begun are due now (their working days are over)."""
    await db.execute(
        "UPDATE campaign.emails SET next_attempt_at = now() - interval '1 second'"
        " WHERE campaign_id = $1 AND step = $2 AND status = 'approved'",
        uuid.UUID(run_id),
        step,
    )


async def test_a_sequence_is_reviewed_with_its_first_email_and_sent_in_its_thread(
    api: httpx.AsyncClient, public: httpx.AsyncClient, db: asyncpg.Pool, tag: str,
    module_smtp: SmtpTestServer,
) -> None:  # fmt: skip
    run_id, audience = await in_review(api, db, tag, 2, [3, 5])
    ada, bob = audience.addresses

    page = await review_page(api, run_id)
    assert [item["to_address"] for item in page] == [ada, bob]  # first emails only
    first = page[0]
    assert [(f["step"], f["wait_days"], f["status"]) for f in first["follow_ups"]] == [
        (1, 3, "drafted"),
        (2, 5, "drafted"),
    ]
    assert first["follow_ups"][0]["subject"] == f"Re: {first['subject']}"
    # In German (the audience is in Berlin); the Art. 14 notice only in the first email.
    assert "Mit einem Klick abmelden: " in first["follow_ups"][0]["body"]
    assert first["follow_ups"][0]["body"].startswith("Hallo Person0,")
    assert "DSGVO" not in first["follow_ups"][0]["body"]
    assert "DSGVO" in first["body"]
    view = (await api.get(f"/api/campaigns/{run_id}")).json()
    assert view["counts"]["drafted"] == 2  # recipients, not emails

    # Approving the recipients approves their sequences: the first emails go, the follow-ups
    # wait for their turn, then for their working days.
    response = await api.post(f"/api/campaigns/{run_id}/approve-all")
    assert response.status_code == 200, response.text
    await wait_for(lambda: _sent_to(module_smtp, ada, bob), what="the first emails")
    steps = await wait_for(
        lambda: _released(db, run_id, 2), what="the first follow-ups to be scheduled"
    )
    first_message = messages_to(module_smtp, ada)[0]
    # Written and sent as the campaign creator's identity: signed by them, one footer.
    assert first_message["From"].addresses[0].addr_spec == SAM["email"]
    text = first_message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert SAM["signature"] in text
    assert text.count("\n-- \n") == 1  # the footer, once: drafted and sent as the same sender
    assert "Sam Sourcer, Example Recruiting Ltd" in text  # the footer's sender line
    for address in (ada, bob):
        one, two = steps[address]
        assert one["status"] == "approved"
        assert one["next_attempt_at"] >= datetime.now(UTC) + timedelta(days=3, minutes=-1)
        assert two["status"] == "waiting"
    assert steps[ada][0]["in_reply_to"] == first_message["Message-ID"]
    page = await review_page(api, run_id)
    assert page[0]["follow_ups"][0]["due_at"] is not None
    assert (await api.get(f"/api/campaigns/{run_id}")).json()["status"] == "sending"

    # Bob replies to the first email: his follow-ups stop, Ada's go on.
    bob_first = messages_to(module_smtp, bob)[0]
    reply = {"message_id": bob_first["Message-ID"], "kind": "replied", "detail": {}}
    response = await public.post(
        "/api/webhooks/email-events",
        json={"events": [reply]},
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )
    assert response.status_code == 202, response.text
    steps = await follow_ups(db, run_id)
    assert [row["status"] for row in steps[bob]] == ["stopped", "stopped"]
    assert "replied" in steps[bob][0]["last_error"]

    await make_due(db, run_id, 1)
    await wait_for(lambda: _count_to(module_smtp, ada, 2), what="Ada's first follow-up")
    follow_up = messages_to(module_smtp, ada)[1]
    assert follow_up["In-Reply-To"] == first_message["Message-ID"]
    assert follow_up["References"] == first_message["Message-ID"]
    assert words(follow_up["Subject"]) == f"Re: {words(first_message['Subject'])}"
    assert follow_up["Message-ID"] != first_message["Message-ID"]

    # The last step goes in the same thread; then the campaign has finished sending.
    await wait_for(lambda: _released(db, run_id, 1, step=2), what="the second follow-up")
    await make_due(db, run_id, 2)
    await wait_for(lambda: _count_to(module_smtp, ada, 3), what="Ada's last follow-up")
    last = messages_to(module_smtp, ada)[2]
    assert last["In-Reply-To"] == first_message["Message-ID"]
    assert len(messages_to(module_smtp, bob)) == 1
    view = await wait_for(
        lambda: _campaign_in(api, run_id, "monitoring"), what="the campaign to finish sending"
    )
    assert view["counts"]["sent"] == 2


async def test_a_person_stops_one_recipient_and_a_cancel_stops_the_rest(
    api: httpx.AsyncClient, db: asyncpg.Pool, tag: str, module_smtp: SmtpTestServer
) -> None:
    run_id, audience = await in_review(api, db, tag, 2, [2])
    ada, bob = audience.addresses
    page = await review_page(api, run_id)
    assert (await api.post(f"/api/campaigns/{run_id}/approve-all")).status_code == 200
    await wait_for(lambda: _released(db, run_id, 2), what="the follow-ups to be scheduled")

    stop = await api.post(f"/api/campaigns/{run_id}/emails/{page[0]['email_id']}/stop-sequence")
    assert stop.status_code == 200, stop.text
    assert stop.json()["stopped"] == 1
    again = await api.post(f"/api/campaigns/{run_id}/emails/{page[0]['email_id']}/stop-sequence")
    assert again.json()["stopped"] == 0
    unknown = await api.post(f"/api/campaigns/{run_id}/emails/{uuid.uuid4()}/stop-sequence")
    assert unknown.status_code == 404, unknown.text
    steps = await follow_ups(db, run_id)
    assert steps[ada][0]["status"] == "stopped"
    assert steps[ada][0]["last_error"] == "stopped by sam-sourcer"

    response = await api.post(f"/api/campaigns/{run_id}/cancel")
    assert response.status_code == 200, response.text
    steps = await follow_ups(db, run_id)
    assert steps[bob][0]["status"] == "cancelled"
    await make_due(db, run_id, 1)  # nothing is left to be due
    await asyncio.sleep(1)  # the sender's poll (0.2 s) would have found it
    assert len(messages_to(module_smtp, ada)) == len(messages_to(module_smtp, bob)) == 1


def words(header: str) -> str:
    """A header's text, however it was folded."""
    return " ".join(str(header).split())


async def _sent_to(smtp: SmtpTestServer, *addresses: str) -> bool:
    return all(messages_to(smtp, address) for address in addresses)


async def _count_to(smtp: SmtpTestServer, address: str, count: int) -> bool:
    return len(messages_to(smtp, address)) >= count


async def _released(
    db: asyncpg.Pool, run_id: str, recipients: int, step: int = 1
) -> dict[str, list[asyncpg.Record]] | None:
    steps = await follow_ups(db, run_id)
    released = [rows for rows in steps.values() if rows[step - 1]["status"] == "approved"]
    return steps if len(released) == recipients else None


async def _campaign_in(api: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any] | None:
    view: dict[str, Any] = (await api.get(f"/api/campaigns/{run_id}")).json()
    return view if view["status"] == status else None
