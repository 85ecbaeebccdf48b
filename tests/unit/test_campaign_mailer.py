"""The message an approved email becomes, what SMTP failures mean, and the production guard."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import aiosmtplib
import pytest
from pydantic import ValidationError

from services.campaign.domain.composing import Draft, FooterContext, SenderIdentity, finalise
from services.campaign.domain.links import (
    TrackingLinks,
    UnsubscribeLinks,
    verify_tracking_token,
    verify_unsubscribe_token,
)
from services.campaign.domain.messages import (
    build_message,
    envelope_of,
    html_alternative,
    make_message_id,
    wire_bytes,
)
from services.campaign.domain.monitoring import redirect_allowed
from services.campaign.domain.sending import OutgoingEmail, PermanentFailure, TemporaryFailure
from services.campaign.mailer import classify_failure
from shared.settings import Settings
from tests.support.html import tags

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


# ---- The HTML part: tracked links and the open pixel ------------------------------------------

TRACKING = TrackingLinks("https://jobs.acme.example", SECRET)
JOB_LINK = "https://careers.acme.example/jobs/42?ref=mail&lang=en"
OTHER_LINK = "http://acme.example/team"


def parts_of(message: EmailMessage) -> tuple[str, str]:
    plain = cast(EmailMessage, message.get_body(preferencelist=("plain",)))
    html = cast(EmailMessage, message.get_body(preferencelist=("html",)))
    return cast(str, plain.get_content()), cast(str, html.get_content())


def stored(email: OutgoingEmail, body: str, found_via: str = "GitHub") -> OutgoingEmail:
    """The email as the drafting step stores it: the footer is part of the body."""
    footer = FooterContext(SENDER, email.job_title, found_via, LINKS.url(email.email_id))
    return replace(email, body=finalise(Draft(email.subject, body), footer).body)


def test_with_tracking_an_html_alternative_follows_the_unchanged_plain_text() -> None:
    email = outgoing(body=f"Hi Ada,\n\nThe role: {JOB_LINK}. Interested?")
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    plain_only = build_message(email, SENDER, LINKS, now=now)
    message = build_message(email, SENDER, LINKS, now=now, tracking=TRACKING)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    plain, _ = parts_of(message)
    assert plain == plain_only.get_content()
    for name in (
        "From",
        "To",
        "Subject",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ):
        assert message[name] == plain_only[name]
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    wire = wire_bytes(message)
    assert wire.isascii()
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
    received = parts_of(message_from_bytes(wire, policy=policy.default))
    assert tuple(part.replace("\r\n", "\n") for part in received) == parts_of(message)


def test_body_links_go_through_the_click_redirect_and_the_redirect_accepts_them() -> None:
    email = stored(outgoing(), f"Hi Ada,\n\nThe role: {JOB_LINK}. The team ({OTHER_LINK}).")
    _, html = parts_of(build_message(email, SENDER, LINKS, tracking=TRACKING))
    hrefs = tags(html).hrefs
    assert hrefs[:2] == [
        TRACKING.click(email.email_id, JOB_LINK),
        TRACKING.click(email.email_id, OTHER_LINK),
    ]
    for href in hrefs[:2]:
        parts = urlsplit(href)
        token = parts.path.removeprefix("/t/c/")
        assert verify_tracking_token("click", token, SECRET) == email.email_id
        [target] = parse_qs(parts.query)["url"]
        assert redirect_allowed(target, email.body)  # what the gateway's redirect will check


def test_the_unsubscribe_link_stays_direct_and_the_pixel_comes_last() -> None:
    email = stored(outgoing(), f"Hi Ada,\n\nThe role: {JOB_LINK}")
    _, html = parts_of(build_message(email, SENDER, LINKS, tracking=TRACKING))
    found = tags(html)
    unsubscribe = LINKS.url(email.email_id)
    assert found.hrefs == [TRACKING.click(email.email_id, JOB_LINK), unsubscribe]
    assert found.images == [TRACKING.open_pixel(email.email_id)]
    assert html.rstrip().endswith("</body></html>")
    tail = html[html.index("Unsubscribe with one click") :]
    assert '<img src="' + TRACKING.open_pixel(email.email_id) + '" width="1" height="1"' in tail


def test_a_link_the_stored_body_lacks_is_not_wrapped() -> None:
    # The footer is added only when the message is built, so its links are not in the stored
    # body: the redirect would refuse them, so they stay direct.
    profile = "https://github.com/ada"
    email = outgoing(body=f"Hi Ada,\n\nThe role: {JOB_LINK}", found_via=profile)
    _, html = parts_of(build_message(email, SENDER, LINKS, tracking=TRACKING))
    assert tags(html).hrefs == [
        TRACKING.click(email.email_id, JOB_LINK),
        profile,
        LINKS.url(email.email_id),
    ]


def test_the_html_is_the_text_escaped_with_paragraphs_and_line_breaks() -> None:
    text = "Hi <b>Ada</b> & co,\r\n\r\nLine one\nsee https://x.example/a?b=1&c=2).\n  \n\nBye"
    html = html_alternative(text, {"https://x.example/a?b=1&c=2"}, lambda u: "T:" + u, "P.gif")
    body = html[html.index("<body>") + len("<body>") : html.index("</body>")]
    assert body.split("\n") == [
        "",
        "<p>Hi &lt;b&gt;Ada&lt;/b&gt; &amp; co,</p>",
        "<p>Line one<br>",
        'see <a href="T:https://x.example/a?b=1&amp;c=2">https://x.example/a?b=1&amp;c=2</a>).</p>',
        "<p>Bye</p>",
        '<img src="P.gif" width="1" height="1" alt=""'
        ' style="display:block;width:1px;height:1px;border:0">',
        "",
    ]
    assert "".join(tags(html).text).count("Hi <b>Ada</b> & co,") == 1


def test_a_link_with_markup_characters_cannot_break_out_of_its_attribute() -> None:
    html = html_alternative('go http://x.example/"onmouseover=alert(1)', set(), str, "P.gif")
    assert tags(html).hrefs == ["http://x.example/"]
    assert '"onmouseover' not in html
    assert "&quot;onmouseover=alert(1)" in html


def test_tracking_is_on_by_default_and_can_be_turned_off() -> None:
    assert Settings().track_opens_and_clicks is True
    assert Settings(track_opens_and_clicks=False).track_opens_and_clicks is False
