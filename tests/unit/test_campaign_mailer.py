"""The message an approved email becomes, what SMTP failures mean, and the production guard."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import aiosmtplib
import pytest
from pydantic import ValidationError

from services.campaign.composing import SenderIdentity, UnsubscribeLinks, verify_unsubscribe_token
from services.campaign.mailer import (
    OutgoingEmail,
    PermanentFailure,
    TemporaryFailure,
    build_message,
    classify_failure,
    envelope_of,
    make_message_id,
    wire_bytes,
)
from shared.settings import Settings

SENDER = SenderIdentity("Grace Hopper", "grace@acme.example", "Acme", "1 Harbour Road, Hamburg")
SECRET = "s" * 40
LINKS = UnsubscribeLinks("https://jobs.acme.example", SECRET, mailto="leave@acme.example")


def outgoing(**changes: Any) -> OutgoingEmail:
    email = OutgoingEmail(
        email_id=uuid.uuid4(),
        to_address="ada@example.org",
        subject="Staff Backend Engineer at Acme",
        body="Hi Ada,\n\nInterested?",
        job_title="Staff Backend Engineer",
        found_via="GitHub",
    )
    return replace(email, **changes)


def test_the_message_carries_identity_footer_and_one_click_unsubscribe() -> None:
    email = outgoing()
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    message = build_message(email, SENDER, LINKS, now=now)
    assert message["From"] == "Grace Hopper <grace@acme.example>"
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Staff Backend Engineer at Acme"
    assert message["Date"] == "Mon, 02 Mar 2026 09:30:00 +0000"
    assert message["Message-ID"] == f"<{email.email_id}@acme.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url, mailto = (part.strip(" <>") for part in str(message["List-Unsubscribe"]).split(","))
    token = url.rsplit("/u/", 1)[1]
    assert url.startswith("https://jobs.acme.example/u/")
    assert verify_unsubscribe_token(token, SECRET) == email.email_id
    assert mailto == f"mailto:leave@acme.example?subject=unsubscribe%20{token}"
    body = message.get_content()
    assert body.startswith("Hi Ada,\n\nInterested?\n\n-- \n")
    assert url in body
    assert SENDER.postal_address in body


def test_the_unsubscribe_header_is_never_encoded_on_the_wire() -> None:
    email = outgoing(subject=" ".join(["Ingénieur·e backend à Düsseldorf"] * 4))
    wire = wire_bytes(build_message(email, SENDER, LINKS))
    header = next(line for line in wire.split(b"\r\n") if line.startswith(b"List-Unsubscribe:"))
    assert header.startswith(b"List-Unsubscribe: <https://jobs.acme.example/u/")
    assert b"=?" not in header
    parsed = message_from_bytes(wire, policy=policy.default)
    assert parsed["Subject"] == email.subject
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
    assert wire.isascii()  # 7-bit: any relay takes it


def test_the_row_message_id_is_kept() -> None:
    message = build_message(outgoing(message_id="<fixed@acme.example>"), SENDER, LINKS)
    assert message["Message-ID"] == "<fixed@acme.example>"
    assert make_message_id(uuid.UUID(int=1), "x@mail.acme.example") == (
        "<00000000-0000-0000-0000-000000000001@mail.acme.example>"
    )


def test_without_mailto_only_the_url_is_offered() -> None:
    links = UnsubscribeLinks("https://jobs.acme.example", SECRET)
    header = str(build_message(outgoing(), SENDER, links)["List-Unsubscribe"])
    assert header.startswith("<https://")
    assert "mailto" not in header


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hi\r\nBcc: everyone@example.org"},
        {"to_address": "ada@example.org\nBcc: everyone@example.org"},
        {"to_address": "ädä@example.org"},
    ],
)
def test_what_cannot_be_written_safely_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"inject|non-ASCII"):
        build_message(outgoing(**fields), SENDER, LINKS)


def test_the_envelope_comes_from_the_headers() -> None:
    message = build_message(outgoing(), SENDER, LINKS)
    assert envelope_of(message) == ("grace@acme.example", ["ada@example.org"])


def refused(code: int, text: str) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, text, "ada@example.org")]
    )


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (refused(550, "no such user"), PermanentFailure(550, "no such user", hard_bounce=True)),
        (refused(551, "moved"), PermanentFailure(551, "moved", hard_bounce=True)),
        (refused(552, "mailbox full"), TemporaryFailure(552, "mailbox full")),  # RFC 5321
        (refused(451, "greylisted"), TemporaryFailure(451, "greylisted")),
        (
            aiosmtplib.SMTPAuthenticationError(535, "bad login"),
            PermanentFailure(535, "bad login", hard_bounce=False),  # our fault, not the address's
        ),
        (
            aiosmtplib.SMTPSenderRefused(553, "not your domain", "grace@acme.example"),
            PermanentFailure(553, "not your domain", hard_bounce=False),
        ),
        (
            aiosmtplib.SMTPDataError(554, "spam"),
            PermanentFailure(554, "spam", hard_bounce=False),
        ),
        (aiosmtplib.SMTPDataError(421, "closing"), TemporaryFailure(421, "closing")),
        (aiosmtplib.SMTPServerDisconnected("gone"), TemporaryFailure(None, "gone")),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), TemporaryFailure(None, "slow")),
        (ConnectionRefusedError(), TemporaryFailure(None, "ConnectionRefusedError")),
    ],
)
def test_failures_are_classified(
    error: aiosmtplib.SMTPException | OSError, outcome: PermanentFailure | TemporaryFailure
) -> None:
    assert classify_failure(error) == outcome


def production(secret: str) -> Settings:
    return Settings(
        environment="production",
        unsubscribe_secret=secret,
        public_base_url="https://jobs.acme.example",
        sender_email="jobs@acme.example",
        sender_postal_address="1 Harbour Road, Hamburg",
        webhook_secret="w" * 32,
    )


def test_production_refuses_the_development_sender_settings() -> None:
    with pytest.raises(ValidationError, match="UNSUBSCRIBE_SECRET") as caught:
        Settings(environment="production")
    for name in ("PUBLIC_BASE_URL", "SENDER_EMAIL", "SENDER_POSTAL_ADDRESS"):
        assert name in str(caught.value)
    with pytest.raises(ValidationError, match="at least 32"):
        production("short")
    assert production("k" * 32).unsubscribe_secret.get_secret_value() == "k" * 32
