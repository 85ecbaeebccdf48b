"""The SMTP adapter: turns one approved email into a compliant message (footer, one-click
unsubscribe headers, a Message-ID that is the same on every retry, and optionally an HTML part
with tracked links and an open pixel) and sends it over a small pool of reused connections,
classifying the outcome as sent, permanent or temporary failure; and the sender identities (one
per recruiter mailbox, each with its own SMTP login and pacing) read from SENDER_IDENTITIES_FILE."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType

import aiosmtplib
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.campaign.domain.composing import SenderIdentity
from services.campaign.domain.messages import envelope_of, wire_bytes
from services.campaign.domain.pacing import SenderPace
from services.campaign.domain.sending import PermanentFailure, SendOutcome, Sent, TemporaryFailure
from services.campaign.domain.windows import zone
from shared.settings import Settings

_tracer = trace.get_tracer(__name__)

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


def _outcome_name(outcome: SendOutcome) -> str:
    if isinstance(outcome, Sent):
        return "sent"
    if isinstance(outcome, PermanentFailure):
        return "bounced" if outcome.hard_bounce else "failed"
    return "temporary_failure"


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
        """Send one message; never raises for SMTP or network trouble, it returns the outcome.
        Traced: a client span per send with the server, the recipients' domains (never an
        address) and the outcome."""
        _, recipients = envelope_of(message)
        domains = sorted({r.rpartition("@")[2].lower() for r in recipients})
        with _tracer.start_as_current_span(
            "smtp send",
            kind=SpanKind.CLIENT,
            attributes={
                "server.address": self._config.host,
                "server.port": self._config.port,
                "email.recipient.domain": ",".join(domains),
                "email.recipient.count": len(recipients),
            },
        ) as span:
            outcome = await self._send(message)
            span.set_attribute("email.outcome", _outcome_name(outcome))
            if not isinstance(outcome, Sent):
                if outcome.code is not None:
                    span.set_attribute("smtp.response.code", outcome.code)
                span.set_status(StatusCode.ERROR, _outcome_name(outcome))
            return outcome

    async def _send(self, message: EmailMessage) -> SendOutcome:
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


# ---- Sender identities -----------------------------------------------------------------------


class IdentityEntry(BaseModel):
    """One recruiter mailbox in SENDER_IDENTITIES_FILE. Unset fields take the default
    identity's settings (SENDER_*, SMTP_*, SEND_DAILY_CAP, SEND_SPACING_SECONDS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(..., min_length=1, description="The campaigns' `created_by` it sends for.")
    name: str = Field(..., min_length=1, description="The From display name.")
    email: str = Field(..., pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="The From address.")
    smtp_username: str | None = None
    smtp_password_env: str | None = Field(
        None, description="The environment variable holding the SMTP password (never the password)."
    )
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65_535)
    daily_cap: int | None = Field(None, ge=0)
    spacing_seconds: float | None = Field(None, ge=0)
    timezone: str | None = None
    signature: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value


class IdentitiesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identities: list[IdentityEntry]

    @field_validator("identities")
    @classmethod
    def _one_per_user(cls, value: list[IdentityEntry]) -> list[IdentityEntry]:
        users = [entry.user for entry in value]
        twice = sorted({user for user in users if users.count(user) > 1})
        if twice:
            raise ValueError(f"each user may have one identity; twice: {', '.join(twice)}")
        return value


class IdentitiesError(ValueError):
    """SENDER_IDENTITIES_FILE cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Mailbox:
    """A sender identity with its SMTP login and its pacing."""

    identity: SenderIdentity
    smtp: SmtpConfig
    pace: SenderPace


@dataclass(frozen=True)
class Mailboxes:
    """The default identity (SENDER_*, SMTP_*) and one per recruiter in the identities file."""

    default: Mailbox
    by_user: Mapping[str, Mailbox]

    def for_user(self, user: str | None) -> Mailbox:
        """The identity of the campaign's creator, else the default one."""
        return self.by_user.get(user, self.default) if user else self.default

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> Mailboxes:
        """Read at startup: a missing file, bad JSON, an unknown field or zone, or an unset
        password variable fails with an IdentitiesError naming it."""
        identity = SenderIdentity.from_settings(settings)
        smtp = SmtpConfig.from_settings(settings)
        default = Mailbox(identity, smtp, _pace(identity, settings, None, None))
        path = settings.sender_identities_file
        if not path:
            return cls(default, {})
        entries = _read_identities(Path(path))
        env = os.environ if environ is None else environ
        by_user = {entry.user: _mailbox(entry, default, settings, env, path) for entry in entries}
        return cls(default, by_user)


def _read_identities(path: Path) -> list[IdentityEntry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IdentitiesError(f"SENDER_IDENTITIES_FILE {path}: cannot read it ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise IdentitiesError(f"SENDER_IDENTITIES_FILE {path}: not JSON ({exc})") from exc
    try:
        return IdentitiesFile.model_validate(raw).identities
    except ValidationError as exc:
        raise IdentitiesError(f"SENDER_IDENTITIES_FILE {path}: {exc}") from exc


def _mailbox(
    entry: IdentityEntry, default: Mailbox, settings: Settings, env: Mapping[str, str], path: str
) -> Mailbox:
    password = default.smtp.password if entry.smtp_username is None else None
    if entry.smtp_password_env is not None:
        password = env.get(entry.smtp_password_env)
        if password is None:
            raise IdentitiesError(
                f"SENDER_IDENTITIES_FILE {path}: identity {entry.user!r} takes its SMTP password "
                f"from ${entry.smtp_password_env}, which is not set"
            )
    identity = dataclasses.replace(
        default.identity, name=entry.name, email=entry.email, user=entry.user,
        timezone=entry.timezone or default.identity.timezone, signature=entry.signature,
    )  # fmt: skip
    smtp = dataclasses.replace(
        default.smtp,
        host=entry.smtp_host or default.smtp.host,
        port=entry.smtp_port or default.smtp.port,
        username=entry.smtp_username if entry.smtp_username is not None else default.smtp.username,
        password=password,
    )
    return Mailbox(
        identity, smtp, _pace(identity, settings, entry.daily_cap, entry.spacing_seconds)
    )


def _pace(
    identity: SenderIdentity, settings: Settings, cap: int | None, spacing: float | None
) -> SenderPace:
    return SenderPace(
        key=identity.email.lower(),
        daily_cap=settings.send_daily_cap if cap is None else cap,
        spacing_seconds=settings.send_spacing_seconds if spacing is None else spacing,
        jitter_seconds=settings.send_spacing_jitter_seconds,
        timezone=identity.timezone,
    )
