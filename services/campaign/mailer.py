"""The SMTP adapter: turns one approved email into a compliant message (footer, one-click
unsubscribe headers, a Message-ID that is the same on every retry, and optionally an HTML part
with tracked links and an open pixel) and sends it over a small pool of reused connections,
classifying the outcome as sent, permanent or temporary failure."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from html import escape
from types import TracebackType

import aiosmtplib

from services.campaign.composing import (
    Draft,
    FooterContext,
    SenderIdentity,
    UnsubscribeLinks,
    finalise,
)
from services.campaign.monitoring import TrackingLinks, links_in
from shared.settings import Settings


@dataclass(frozen=True)
class OutgoingEmail:
    """One approved email as the database holds it: the reviewed draft, without the footer."""

    email_id: uuid.UUID
    to_address: str
    subject: str
    body: str
    job_title: str
    found_via: str | None
    message_id: str | None = None  # the row's message_id; None: derived from email_id


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


_PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t]*\n)+")


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


# SMTP line endings; headers we set are folded as usual, raw ones are written as stored.
WIRE_POLICY = policy.SMTP.clone(refold_source="none")


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it goes over SMTP."""
    return message.as_bytes(policy=WIRE_POLICY)


def envelope_of(message: EmailMessage) -> tuple[str, list[str]]:
    """MAIL FROM and RCPT TO, from the From and To headers (bounces go back to the sender)."""
    sender = parseaddr(str(message["From"]))[1]
    recipients = [address for _, address in getaddresses([str(message["To"])]) if address]
    return sender, recipients


# ---- Outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    message_id: str
    response: str


@dataclass(frozen=True)
class PermanentFailure:
    """A 5xx answer: retrying will not help. `hard_bounce` is true when the server refused the
    recipient itself, so the address belongs on the suppression list; a refused sender, login or
    message content is our problem, not the address's."""

    code: int | None
    message: str
    hard_bounce: bool


@dataclass(frozen=True)
class TemporaryFailure:
    """A 4xx answer, a refused or dropped connection or a timeout: retry later with backoff."""

    code: int | None
    message: str


SendOutcome = Sent | PermanentFailure | TemporaryFailure

# RFC 5321 4.5.3.1.10: 552 "mailbox full" at RCPT is to be treated as the temporary 452.
_RCPT_TEMPORARY_DESPITE_5XX = {552}


def classify_failure(
    exc: aiosmtplib.SMTPException | OSError,
) -> PermanentFailure | TemporaryFailure:
    """What a failed send means for the email and the address."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        if refused.code >= 500 and refused.code not in _RCPT_TEMPORARY_DESPITE_5XX:
            return PermanentFailure(refused.code, refused.message, hard_bounce=True)
        return TemporaryFailure(refused.code, refused.message)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code >= 500:
            return PermanentFailure(exc.code, exc.message, hard_bounce=False)
        return TemporaryFailure(exc.code, exc.message)
    return TemporaryFailure(None, str(exc) or type(exc).__name__)


# ---- The connection pool ---------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 1025
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 10.0
    pool_size: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        password = settings.smtp_password
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            starttls=settings.smtp_starttls,
            timeout_seconds=settings.smtp_timeout_seconds,
            pool_size=settings.smtp_pool_size,
        )


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    since: float


class Mailer:
    """Sends messages over at most `pool_size` SMTP connections, reused between sends.

    Opening a connection costs a TCP and often a TLS handshake, EHLO and a login; a campaign sends
    hundreds of emails, so connections are kept. One that sat idle longer than
    `idle_check_seconds` is checked with NOOP first, because servers drop idle clients and a send
    must not be the thing that finds out. A connection is dropped after any failure that may have
    left it out of step with the server; the next send opens a fresh one.
    """

    def __init__(
        self,
        config: SmtpConfig,
        *,
        idle_check_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._idle_check_seconds = idle_check_seconds
        self._clock = clock
        self._idle: list[_Idle] = []
        self._slots = asyncio.Semaphore(config.pool_size)
        self.connections_opened = 0

    async def __aenter__(self) -> Mailer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, message: EmailMessage) -> SendOutcome:
        """Send one message; never raises for SMTP or network trouble, it returns the outcome."""
        sender, recipients = envelope_of(message)
        if not all(a.isascii() for a in (sender, *recipients)):
            return PermanentFailure(None, "an address needs SMTPUTF8", hard_bounce=False)
        data = wire_bytes(message)
        async with self._slots:
            client: aiosmtplib.SMTP | None = None
            keep = False  # cancelled mid-transaction: the session's state is unknown, close it
            try:
                client = await self._checkout()
                _, response = await client.sendmail(sender, recipients, data)
                keep = True
                return Sent(message_id=str(message["Message-ID"]), response=response)
            except (aiosmtplib.SMTPException, OSError) as exc:
                # A clear answer (4xx/5xx) leaves the session usable: aiosmtplib sends RSET.
                keep = isinstance(
                    exc, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused
                )
                return classify_failure(exc)
            finally:
                self._checkin(client, keep=keep)

    async def aclose(self) -> None:
        """Say QUIT on every idle connection."""
        idle, self._idle = self._idle, []
        for entry in idle:
            try:
                await entry.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                entry.client.close()

    async def _checkout(self) -> aiosmtplib.SMTP:
        while self._idle:
            entry = self._idle.pop()
            if await self._still_usable(entry):
                return entry.client
        return await self._connect()

    def _checkin(self, client: aiosmtplib.SMTP | None, *, keep: bool) -> None:
        if client is None:
            return
        if keep and client.is_connected:
            self._idle.append(_Idle(client, self._clock()))
        else:
            client.close()

    async def _still_usable(self, entry: _Idle) -> bool:
        if not entry.client.is_connected:
            entry.client.close()
            return False
        if self._clock() - entry.since < self._idle_check_seconds:
            return True
        try:
            await entry.client.noop()
        except (aiosmtplib.SMTPException, OSError):
            entry.client.close()
            return False
        return True

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            timeout=config.timeout_seconds,
            start_tls=config.starttls,
        )
        try:
            await client.connect()  # logs in too when a username is set
        except (aiosmtplib.SMTPException, OSError):
            client.close()  # e.g. connected, then the login was refused
            raise
        self.connections_opened += 1
        return client
