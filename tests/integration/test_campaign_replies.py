"""Replies from the sender's mailbox, against a real IMAP server (dovecot) and real campaign email:
the campaign service sends approved emails to the test's SMTP server, then the test puts into the
mailbox what candidates and mail servers send back (a reply, an out-of-office, a bounce report, a
request to be removed, a stranger's mail) and the mailbox reader (`services/campaign/inbox.py`)
records each once, through the webhook's path: `replied` with a classification, `bounced` with
the email marked and the address suppressed, nothing for the rest.

The reader is driven here one poll at a time (`Inbox.poll_once`); one test shows that the campaign
service polls on its own when IMAP_HOST is set, one that an unreachable server is retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from deploy.servers import free_port
from services.campaign.inbox import ImapFailure, Inbox, PollResult
from shared.contracts.campaign import EmailApproved
from shared.settings import Settings
from tests.support.api import wait_for
from tests.support.campaign_rows import Campaign, Email, make_campaign
from tests.support.dovecot import DovecotServer
from tests.support.smtp import SmtpTestServer
from tests.support.stack import Launcher

pytestmark = pytest.mark.integration

SENDER_ENV = {
    "SEND_RATE_PER_SECOND": "0",
    "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
    "SEND_POLL_SECONDS": "0.2",
}


def imap_settings(settings: Settings, imap: DovecotServer, **more: Any) -> Settings:
    return settings.model_copy(
        update={
            "imap_host": imap.host,
            "imap_port": imap.port,
            "imap_username": imap.username,
            "imap_password": SecretStr(imap.password),
            "imap_tls": False,
            "imap_folder": imap.folder,
            **more,
        }
    )


@pytest.fixture
async def inbox(
    db: asyncpg.Pool, prepared: Settings, dovecot: DovecotServer
) -> AsyncIterator[Inbox]:
    reader = Inbox(db, imap_settings(prepared, dovecot))
    yield reader
    await db.execute(
        "DELETE FROM campaign.inbox_cursors WHERE mailbox = $1",
        f"{dovecot.username}@{dovecot.host}:{dovecot.port}",
    )


async def send_campaign(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    publish: Callable[[EmailApproved], Awaitable[None]],
    names: list[str],
) -> Campaign:
    """A campaign whose approved emails the campaign service has sent to the SMTP server."""
    launcher.service_within("campaign", 60, {**SENDER_ENV, **smtp.env})
    campaign = await make_campaign(db, tag, dict.fromkeys(names, "approved"), settings=prepared)
    for email in campaign.emails:
        await publish(
            EmailApproved(
                campaign_id=email.campaign_id, email_id=email.email_id, approved_by="reviewer"
            )
        )
    await smtp.wait_for_messages(len(names))

    async def all_sent() -> bool:
        statuses = await db.fetch(
            "SELECT status FROM campaign.emails WHERE campaign_id = $1", campaign.campaign_id
        )
        return all(row["status"] == "sent" for row in statuses)

    await wait_for(all_sent, what="every email sent")
    return campaign


# ---- What arrives in the mailbox -------------------------------------------------------------


def reply_to(
    original: EmailMessage,
    sender: str,
    text: str,
    *,
    threaded: bool = True,
    headers: dict[str, str] | None = None,
    subject: str | None = None,
) -> bytes:
    """A reply as a mail client writes it: Re: subject, threading headers, the original quoted
    under an "On ... wrote:" line."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(original["From"])
    reply["Subject"] = subject or f"Re: {original['Subject']}"
    reply["Date"] = formatdate(usegmt=True)
    reply["Message-ID"] = make_msgid(domain="mail.example.net")
    if threaded:
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = str(original["Message-ID"])
    for name, value in (headers or {}).items():
        reply[name] = value
    body = original.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    quoted = "\n".join(f"> {line}" for line in body.get_content().splitlines())
    reply.set_content(
        f"{text}\n\nOn Fri, 4 Dec 2026 at 10:00, {original['From']} wrote:\n\n{quoted}\n"
    )
    return bytes(reply)


def bounce_report(original: EmailMessage, recipient: str) -> bytes:
    """A Postfix delivery status notification for a hard bounce, with the original attached."""
    return (
        (
            f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
            f"To: {original['From']}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            f"Message-Id: {make_msgid(domain='mx.example.net')}\r\n"
            f"Auto-Submitted: auto-replied\r\n"
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
            f"\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            f"\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
            f"User unknown\r\n"
            f"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        + bytes(original).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        + b"\r\n--B--\r\n"
    )


def sent_message(smtp: SmtpTestServer, email: Email) -> EmailMessage:
    [received] = smtp.messages_to(email.address)
    return received.message


async def events_of(db: asyncpg.Pool, email: Email) -> list[tuple[str, dict[str, Any]]]:
    """The email's delivery events other than `sent`, oldest first."""
    rows = await db.fetch(
        "SELECT kind, detail FROM campaign.delivery_events WHERE email_id = $1 AND kind <> 'sent'"
        " ORDER BY id",
        email.email_id,
    )
    return [(row["kind"], json.loads(row["detail"])) for row in rows]


async def suppression(db: asyncpg.Pool, email: Email) -> str | None:
    reason: str | None = await db.fetchval(
        "SELECT reason FROM campaign.suppressions WHERE email = $1", email.address.lower()
    )
    return reason


# ---- Tests -----------------------------------------------------------------------------------


async def test_replies_bounces_and_auto_replies_are_recorded_once(
    launcher: Launcher,
    smtp: SmtpTestServer,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    publish: Callable[[EmailApproved], Awaitable[None]],
    dovecot: DovecotServer,
    inbox: Inbox,
) -> None:
    names = ["ada", "bruno", "carla", "dora"]
    campaign = await send_campaign(launcher, smtp, db, prepared, tag, publish, names)
    ada, bruno, carla, dora = campaign.emails
    first = sent_message(smtp, ada)

    dovecot.append(reply_to(first, ada.address, "Sounds great, I'm interested. When can we talk?"))
    dovecot.append(
        reply_to(
            sent_message(smtp, bruno),
            bruno.address,
            "I am out of the office until Monday.",
            headers={"Auto-Submitted": "auto-replied"},
            subject="Automatic reply: Hello",
        )
    )
    dovecot.append(bounce_report(sent_message(smtp, carla), carla.address))
    # No threading headers (a new message, not a reply): matched by its sender's address.
    dovecot.append(
        reply_to(
            sent_message(smtp, dora),
            dora.address.upper(),
            "Please remove me from your list.",
            threaded=False,
        )
    )
    dovecot.append(reply_to(first, f"stranger-{tag}@example.net", "Who is this?", threaded=False))

    result = await inbox.poll_once()
    assert result == PollResult(
        read=5, replies=2, bounces=1, ignored=1, unmatched=1, duplicates=0,
        classifications={"interested": 1, "unsubscribe": 1},
    )  # fmt: skip

    # A reply: one `replied` event with the classification (the quoted footer's "unsubscribe"
    # link is not the candidate's words); the address stays mailable.
    assert await events_of(db, ada) == [
        (
            "replied",
            {
                "classification": "interested",
                "classified_by": "rules",
                "via": "imap",
                "matched_by": "in_reply_to",
            },
        )
    ]
    assert await suppression(db, ada) is None
    # An out-of-office: nothing.
    assert await events_of(db, bruno) == []
    # A bounce report: the email bounced, the address suppressed, as a webhook bounce does.
    [(kind, detail)] = await events_of(db, carla)
    assert kind == "bounced"
    assert detail["permanent"] is True
    assert detail["status"] == "5.1.1"
    assert detail["matched_by"] == "original_message_id"
    assert "User unknown" in detail["reason"]
    status = await db.fetchval(
        "SELECT status FROM campaign.emails WHERE email_id = $1", carla.email_id
    )
    assert status == "bounced"
    assert await suppression(db, carla) == "hard_bounce"
    # A request to be removed: a reply, and the address suppressed for every later campaign.
    [(kind, detail)] = await events_of(db, dora)
    assert (kind, detail["classification"], detail["matched_by"]) == (
        "replied",
        "unsubscribe",
        "address",
    )
    assert await suppression(db, dora) == "unsubscribed"

    # The next poll, by a reader as a restarted service makes it, reads nothing new; nothing was
    # marked read in the recruiter's mailbox.
    assert await Inbox(db, imap_settings(prepared, dovecot)).poll_once() == PollResult()
    assert all(b"\\Seen" not in flags for flags in dovecot.flags())

    # As if the reader's place were lost (a restart on a new database row): everything is read
    # again and nothing is recorded twice.
    await db.execute(
        "DELETE FROM campaign.inbox_cursors WHERE mailbox LIKE $1", f"%:{dovecot.port}"
    )
    again = await inbox.poll_once()
    assert (again.read, again.duplicates, again.replies, again.bounces) == (5, 3, 0, 0)
    total = await db.fetchval(
        "SELECT count(*) FROM campaign.delivery_events WHERE campaign_id = $1 AND kind <> 'sent'",
        campaign.campaign_id,
    )
    assert total == 3


async def test_the_campaign_service_reads_the_mailbox_when_imap_host_is_set(
    launcher: Launcher,
    db: asyncpg.Pool,
    prepared: Settings,
    tag: str,
    dovecot: DovecotServer,
) -> None:
    campaign = await make_campaign(
        db, tag, {"erin": "sent"}, settings=prepared, status="monitoring"
    )
    [erin] = campaign.emails
    launcher.service("campaign", **dovecot.env, IMAP_POLL_SECONDS="0.2")
    original = EmailMessage()
    original["From"] = prepared.sender_email
    original["Subject"] = "Outreach"
    original["Message-ID"] = erin.message_id
    original.set_content("Hi Erin")
    dovecot.append(reply_to(original, erin.address, "Gerne, klingt spannend! Wann passt es?"))

    events = await wait_for(lambda: events_of(db, erin), what="the reply to be recorded")
    assert [(kind, detail["classification"]) for kind, detail in events] == [
        ("replied", "interested")
    ]
    await db.execute(
        "DELETE FROM campaign.inbox_cursors WHERE mailbox LIKE $1", f"%:{dovecot.port}"
    )


async def test_an_unreachable_mailbox_is_logged_and_retried(
    db: asyncpg.Pool, prepared: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = {"imap_host": "127.0.0.1", "imap_port": free_port(), "imap_tls": False}
    reader = Inbox(db, prepared.model_copy(update={**nowhere, "imap_poll_seconds": 0.05}))
    with pytest.raises(OSError, match="onnect"):
        await reader.poll_once()

    caplog.set_level(logging.ERROR, logger="services.campaign.inbox")
    await reader.start()
    try:

        async def failures() -> int:
            count = sum("reading the mailbox" in r.getMessage() for r in caplog.records)
            return count if count >= 3 else 0

        await wait_for(failures, what="three failed polls")
        assert reader.running
    finally:
        await reader.stop()
    assert not reader.running


async def test_a_refused_login_is_an_error_naming_it(
    db: asyncpg.Pool, prepared: Settings, dovecot: DovecotServer
) -> None:
    dovecot.password = "not-the-password"
    reader = Inbox(db, imap_settings(prepared, dovecot))
    with pytest.raises(ImapFailure, match="IMAP login failed: NO"):
        await reader.poll_once()


async def test_a_renumbered_folder_is_read_from_its_start(
    db: asyncpg.Pool, prepared: Settings, tag: str
) -> None:
    """A folder whose UIDVALIDITY changed (deleted and made again) numbers its mail from 1 again:
    the reader's old place in it means nothing then."""
    campaign = await make_campaign(db, tag, {"fay": "sent"}, settings=prepared, status="monitoring")
    [fay] = campaign.emails
    original = EmailMessage()
    original["From"] = prepared.sender_email
    original["Subject"] = "Outreach"
    original["Message-ID"] = fay.message_id
    original.set_content("Hi Fay")
    with DovecotServer(folder="Replies") as imap:
        reader = Inbox(db, imap_settings(prepared, imap))
        try:
            imap.append(reply_to(original, fay.address, "Tell me more!"))
            imap.append(reply_to(original, fay.address, "Also: is it remote?"))
            assert (await reader.poll_once()).replies == 2
            with imap.connect() as client:
                client.delete("Replies")
                client.create("Replies")
            imap.append(reply_to(original, fay.address, "Sorry, not interested after all."))
            result = await reader.poll_once()
            assert (result.read, result.replies) == (1, 1)
            assert result.classifications == {"not_interested": 1}
        finally:
            await db.execute(
                "DELETE FROM campaign.inbox_cursors WHERE mailbox LIKE $1", f"%:{imap.port}"
            )
    assert [kind for kind, _ in await events_of(db, fay)] == ["replied"] * 3
