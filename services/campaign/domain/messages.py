"""The message as it goes over SMTP, built from a stored email: headers (a Message-ID fixed by
the email's id, one-click `List-Unsubscribe`), the footer exactly once, and optionally an HTML
alternative with tracked links and an open pixel. Plain Python (the `email` package); the SMTP
adapter, `services/campaign/mailer.py`, sends what this builds."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from html import escape

from services.campaign.domain.composing import Draft, FooterContext, SenderIdentity, finalise
from services.campaign.domain.links import TrackingLinks, UnsubscribeLinks
from services.campaign.domain.monitoring import links_in
from services.campaign.domain.sending import OutgoingEmail
from services.campaign.domain.sequences import thread_references


def make_message_id(email_id: uuid.UUID, sender_email: str) -> str:
    """A Message-ID fixed by the email's id, so a retry is recognisably the same message and a
    reply's In-Reply-To leads back to the row."""
    domain = sender_email.rpartition("@")[2]
    return f"<{email_id}@{domain}>"


def build_message(
    email: OutgoingEmail,
    sender: SenderIdentity,
    links: UnsubscribeLinks,
    *,
    now: datetime | None = None,
    tracking: TrackingLinks | None = None,
) -> EmailMessage:
    """The message as sent. The footer is added here, from the same token as List-Unsubscribe, so
    no reviewer edit or template can drop the opt-out or make the two links differ.

    Without `tracking` the message is text/plain only. With it, the message is
    multipart/alternative: the same text/plain part, then an HTML rendering of it whose links go
    through the click redirect (the unsubscribe link stays direct) and which ends with the open
    pixel (see `html_alternative`).

    Raises ValueError for what cannot be written safely: a line break in the subject or address,
    or an address the email package rejects (e.g. a non-ASCII local part).
    """
    for value in (email.to_address, email.subject):
        if "\n" in value or "\r" in value:
            raise ValueError("an address or subject with a line break would inject headers")
    unsubscribe_url = links.url(email.email_id)
    footer = FooterContext(sender, email.job_title, email.found_via, unsubscribe_url)
    draft = finalise(Draft(email.subject, email.body), footer)

    message = EmailMessage()
    message["From"] = Address(display_name=sender.name, addr_spec=sender.email)
    message["To"] = Address(addr_spec=email.to_address)
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = email.message_id or make_message_id(email.email_id, sender.email)
    for name, value in thread_references(email.in_reply_to).items():
        message[name] = value  # a follow-up, in the first email's thread
    mailto = links.mailto_uri(email.email_id)
    # Stored raw and written unfolded (see WIRE_POLICY): the standard folding would turn a URL
    # longer than a line into RFC 2047 encoded words, which no unsubscribe button understands.
    message.set_raw(
        "List-Unsubscribe", f"<{unsubscribe_url}>" + (f",\n <{mailto}>" if mailto else "")
    )
    # RFC 8058: mailbox providers POST to the URL when the user clicks their own unsubscribe button.
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable keeps the message 7-bit, whatever the relay supports.
    message.set_content(draft.body, cte="quoted-printable")
    if tracking is not None:
        html = html_alternative(
            draft.body,
            tracked_links(email.body, unsubscribe_url),
            lambda url: tracking.click(email.email_id, url),
            tracking.open_pixel(email.email_id),
        )
        message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message


def tracked_links(stored_body: str, unsubscribe_url: str) -> frozenset[str]:
    """The links worth a click redirect: those of the body as stored, because the redirect
    follows only those (services/campaign/monitoring.py, redirect_allowed), and never the
    unsubscribe link, which must work without our tracking and is no click on the offer."""
    return frozenset(links_in(stored_body)) - {unsubscribe_url}


def html_alternative(
    text: str, tracked: Collection[str], click: Callable[[str], str], pixel_url: str
) -> str:
    """`text` as an HTML document: escaped, blank lines separating <p> paragraphs, line breaks as
    <br>, every http(s) link an <a> (through `click(url)` for the `tracked` ones, direct for the
    rest), and the 1x1 open pixel at the end. Links are found as the click redirect finds them
    (`links_in`), so a wrapped URL is character for character one the redirect accepts."""

    def line_html(line: str) -> str:
        parts: list[str] = []
        pos = 0
        for url in links_in(line):
            start = line.index(url, pos)
            href = click(url) if url in tracked else url
            parts.append(escape(line[pos:start]))
            parts.append(f'<a href="{escape(href)}">{escape(url)}</a>')
            pos = start + len(url)
        parts.append(escape(line[pos:]))
        return "".join(parts)

    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    paragraphs = [
        "<p>" + "<br>\n".join(line_html(line) for line in paragraph.split("\n")) + "</p>"
        for paragraph in _PARAGRAPH_BREAK.split(text)
        if paragraph.strip()
    ]
    pixel = (
        f'<img src="{escape(pixel_url)}" width="1" height="1" alt=""'
        ' style="display:block;width:1px;height:1px;border:0">'
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8"></head><body>',
            *paragraphs,
            pixel,
            "</body></html>",
            "",
        ]
    )


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it goes over SMTP."""
    return message.as_bytes(policy=WIRE_POLICY)


def envelope_of(message: EmailMessage) -> tuple[str, list[str]]:
    """MAIL FROM and RCPT TO, from the From and To headers (bounces go back to the sender)."""
    sender = parseaddr(str(message["From"]))[1]
    recipients = [address for _, address in getaddresses([str(message["To"])]) if address]
    return sender, recipients


_PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t]*\n)+")


# SMTP line endings; headers we set are folded as usual, raw ones are written as stored.
WIRE_POLICY = policy.SMTP.clone(refold_source="none")
