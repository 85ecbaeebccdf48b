"""Reads the sender's mailbox over IMAP (aioimaplib) and records what candidates answered: a
reply becomes a `replied` delivery event with its classification, a bounce report (DSN) a
`bounced` one, through the same handler as the provider webhook (`record_email_events`), so a
hard bounce marks the email bounced and suppresses the address, and a reply asking to be left
alone suppresses it too. Auto-replies and mail about nothing we sent record nothing.

Each poll reads the folder's messages after the last UID processed (`campaign.inbox_cursors`), one
transaction per message (its events and the cursor together), without marking anything read
(BODY.PEEK). Reading the mailbox again records nothing twice: a message's event id comes from its
Message-ID. See docs/email.md, "Replies from the mailbox".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import asyncpg
from aioimaplib import IMAP4, IMAP4_SSL

from services.campaign.domain.monitoring import normalise_message_id
from services.campaign.domain.replies import (
    AutoReply,
    Bounce,
    Classification,
    Reply,
    classification_messages,
    classify,
    parse_classification,
    parse_message,
    without_lines_of,
)
from services.campaign.handlers.monitoring import record_email_events
from services.campaign.model import DraftModel
from services.campaign.repository import delivery
from services.campaign.repository.delivery import EmailRef, MonitoringRepository
from shared.contracts.campaign import InboundEvent, RecordEmailEventsCommand
from shared.settings import Settings

log = logging.getLogger(__name__)

IMAP_TIMEOUT_SECONDS = 30.0  # one IMAP command; a message of a few MB arrives well within it
MAX_MESSAGES_PER_POLL = 500  # a first read of a large folder goes on at the next poll
CLOCK_SKEW = timedelta(hours=1)
_MAX_EVENT_ID = 200  # InboundEvent.event_id's limit
MatchedBy = Literal["in_reply_to", "references", "address", "original_message_id"]


class ImapFailure(Exception):
    """The IMAP server refused a command (login, select, search, fetch)."""


class ReplyClassifier(Protocol):
    """A second opinion on a reply's classification (the language model); None: no opinion."""

    async def classify(self, reply: Reply) -> Classification | None: ...


class ModelReplyClassifier:
    """Asks the language model, through the inference service (as drafting does), what a reply
    says; any failure or an answer naming no label leaves the decision to the rules."""

    def __init__(self, model: DraftModel) -> None:
        self._model = model

    async def classify(self, reply: Reply) -> Classification | None:
        correlation_id = f"reply:{reply.message_id or 'no-message-id'}"[:128]
        try:
            answer = await self._model.answer(classification_messages(reply), correlation_id)
        except Exception:  # a model is a bonus here: the rules always have an answer
            log.warning("the model did not classify reply %s", reply.message_id, exc_info=True)
            return None
        return parse_classification(answer)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str
    tls: bool
    folder: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ImapConfig:
        if not settings.imap_host:
            raise ValueError("IMAP_HOST is not set")
        password = settings.imap_password.get_secret_value() if settings.imap_password else ""
        return cls(
            settings.imap_host, settings.imap_port, settings.imap_username or "", password,
            settings.imap_tls, settings.imap_folder,
        )  # fmt: skip

    @property
    def mailbox(self) -> str:
        """The mailbox's name in `campaign.inbox_cursors`."""
        return f"{self.username}@{self.host}:{self.port}"


@dataclass
class PollResult:
    """What one poll found, by what it did with each message."""

    read: int = 0
    replies: int = 0
    bounces: int = 0
    ignored: int = 0  # auto-replies, delivery reports that are no failure, our own mail
    unmatched: int = 0  # about no email we sent
    duplicates: int = 0  # recorded before
    classifications: dict[str, int] = field(default_factory=dict)


class Inbox:
    """The mailbox reader: `poll_once()` reads what is new; `start()` polls every
    IMAP_POLL_SECONDS until `stop()`, logging (never raising) a failing server or database."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        classifier: ReplyClassifier | None = None,
        config: ImapConfig | None = None,
    ) -> None:
        self._pool = pool
        self._config = config or ImapConfig.from_settings(settings)
        self._own_address = settings.sender_email.strip().lower()
        self._soft_bounce_limit = settings.soft_bounce_limit
        self._poll_seconds = settings.imap_poll_seconds
        self._classifier = classifier
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # ---- lifecycle ----

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="campaign-inbox")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        """Polling in the background (started, not stopped)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                result = await self.poll_once()
                if result.read:
                    log.info("mailbox %s: %s", self._config.folder, result)
            except Exception:  # a failing IMAP server or database: try again at the next poll
                log.exception("reading the mailbox %s failed; retrying", self._config.mailbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_seconds)

    # ---- one poll ----

    async def poll_once(self) -> PollResult:
        """Read and record the folder's messages that arrived since the last poll."""
        result = PollResult()
        client = await self._connect()
        try:
            uidvalidity = await self._select(client)
            async with self._pool.acquire() as conn:
                last = await delivery.inbox_cursor(
                    conn, self._config.mailbox, self._config.folder, uidvalidity
                )
            for uid in (await self._new_uids(client, last))[:MAX_MESSAGES_PER_POLL]:
                raw = await self._fetch(client, uid)
                await self._process(raw, uid, uidvalidity, result)
        finally:
            await _close(client)
        return result

    async def _process(
        self, raw: bytes | None, uid: int, uidvalidity: int, out: PollResult
    ) -> None:
        """Match the message to the email it is about, classify a reply, and record it; the
        cursor moves past it in the same transaction, whatever it was."""
        out.read += 1
        try:
            parsed = parse_message(raw) if raw is not None else AutoReply(None, "expunged")
        except Exception:  # a parser bug must not stop the mailbox at this message for ever
            log.exception("message %d of %s is unreadable; skipped", uid, self._config.folder)
            parsed = AutoReply(None, "unreadable")
        if isinstance(parsed, Reply) and parsed.sender == self._own_address:
            # A copy of our own email (a follow-up names the first one's Message-ID).
            parsed = AutoReply(parsed.message_id, "our own mail")
        event: InboundEvent | None = None
        if isinstance(parsed, AutoReply):
            out.ignored += 1
        else:
            # Matched before the transaction: a model's opinion may take seconds.
            async with self._pool.acquire() as conn:
                found = await _email_for(MonitoringRepository(conn), parsed)
            if found is None:
                out.unmatched += 1
            else:
                event = await self._event(parsed, raw or b"", *found)
        async with self._pool.acquire() as conn, conn.transaction():
            if event is not None:
                repo = MonitoringRepository(conn)
                command = RecordEmailEventsCommand(events=[event])
                outcome = await record_email_events(repo, command, self._soft_bounce_limit)
                _count(event, outcome, out)
            await delivery.advance_inbox_cursor(
                conn, self._config.mailbox, self._config.folder, uidvalidity, uid
            )

    async def _event(
        self, parsed: Bounce | Reply, raw: bytes, email: EmailRef, matched_by: MatchedBy
    ) -> InboundEvent:
        """The delivery event the message means for the email it is about."""
        event_id = _event_id(parsed.message_id, raw)
        if isinstance(parsed, Bounce):
            detail: dict[str, Any] = {
                "permanent": parsed.permanent,
                "status": parsed.status,
                "reason": parsed.reason,
                "via": "imap",
                "matched_by": matched_by,
            }
            return InboundEvent(
                email_id=email.email_id, kind="bounced", detail=detail, event_id=event_id
            )
        # The rules read the reply without any line of the email it answers: a quote the parser
        # missed must not make our own footer ("Unsubscribe: ...") the candidate's words.
        classification, classified_by = classify(without_lines_of(parsed.text, email.body)), "rules"
        if self._classifier is not None:
            opinion = await self._classifier.classify(parsed)
            if opinion is not None:
                classification, classified_by = opinion, "model"
        detail = {
            "classification": classification,
            "classified_by": classified_by,
            "via": "imap",
            "matched_by": matched_by,
        }
        return InboundEvent(
            email_id=email.email_id,
            kind="replied",
            detail=detail,
            event_id=event_id,
            occurred_at=parsed.date,
        )

    # ---- IMAP ----

    async def _connect(self) -> IMAP4:
        config = self._config
        client: IMAP4
        if config.tls:
            context = ssl.create_default_context()
            client = IMAP4_SSL(
                config.host, config.port, timeout=IMAP_TIMEOUT_SECONDS, ssl_context=context
            )
        else:
            client = IMAP4(config.host, config.port, timeout=IMAP_TIMEOUT_SECONDS)
        try:
            await client.wait_hello_from_server()
            _ok(await client.login(config.username, config.password), "login")
        except BaseException:
            await _close(client)
            raise
        return client

    async def _select(self, client: IMAP4) -> int:
        response = _ok(await client.select(self._config.folder), f"select {self._config.folder}")
        for line in response.lines:
            found = _UIDVALIDITY.search(bytes(line))
            if found:
                return int(found.group(1))
        raise ImapFailure(f"the server gave {self._config.folder} no UIDVALIDITY")

    async def _new_uids(self, client: IMAP4, last: int) -> list[int]:
        response = _ok(await client.uid_search(f"UID {last + 1}:*", charset=None), "search")
        uids = {int(n) for line in response.lines[:-1] for n in bytes(line).split() if n.isdigit()}
        # "n:*" always includes the folder's highest UID, even one below n.
        return sorted(uid for uid in uids if uid > last)

    async def _fetch(self, client: IMAP4, uid: int) -> bytes | None:
        """The message's bytes, unread flag untouched; None if it was deleted meanwhile."""
        response = _ok(await client.uid("fetch", str(uid), "(BODY.PEEK[])"), f"fetch {uid}")
        for item in response.lines:
            if isinstance(item, bytearray):
                return bytes(item)
        return None


_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")


def _ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        detail = b" ".join(bytes(line) for line in response.lines)[:300].decode("ascii", "replace")
        raise ImapFailure(f"IMAP {what} failed: {response.result} {detail}")
    return response


async def _close(client: IMAP4) -> None:
    """Log out politely if the server still listens; close the connection in any case."""
    with contextlib.suppress(Exception):
        if client.get_state() != "LOGOUT":
            await asyncio.wait_for(client.logout(), 5)
    transport = getattr(client.protocol, "transport", None)
    if transport is not None:
        transport.close()


# ---- Matching a message to the email it is about ---------------------------------------------


async def _email_for(
    repo: MonitoringRepository, parsed: Bounce | Reply
) -> tuple[EmailRef, MatchedBy] | None:
    if isinstance(parsed, Bounce):
        return await _bounced_email(repo, parsed)
    return await _replied_email(repo, parsed)


async def _replied_email(
    repo: MonitoringRepository, reply: Reply
) -> tuple[EmailRef, MatchedBy] | None:
    """The email the reply answers: the first of its In-Reply-To/References that is one of our
    Message-IDs, else the latest email sent to its sender before it was written."""
    if reply.refers_to:
        refs = [normalise_message_id(ref) for ref in reply.refers_to]
        _, by_message_id = await repo.emails([], refs)
        for ref in refs:
            email = by_message_id.get(ref)
            if email is not None:
                return email, "in_reply_to" if ref in reply.in_reply_to else "references"
    if not reply.sender:
        return None
    # Sent before the reply was written, give or take the clocks' skew (a Date header counts
    # whole seconds, from the writer's clock): never an email sent long after it.
    written = reply.date or datetime.now(UTC)
    email = await repo.latest_sent_to(reply.sender, written + CLOCK_SKEW)
    return (email, "address") if email is not None else None


async def _bounced_email(
    repo: MonitoringRepository, bounce: Bounce
) -> tuple[EmailRef, MatchedBy] | None:
    """The email that bounced: by the Message-ID the report quotes, else the latest sent to the
    failed address."""
    if bounce.original_message_id:
        original = normalise_message_id(bounce.original_message_id)
        _, by_message_id = await repo.emails([], [original])
        if original in by_message_id:
            return by_message_id[original], "original_message_id"
    if bounce.recipient:
        email = await repo.latest_sent_to(bounce.recipient, datetime.now(UTC))
        if email is not None:
            return email, "address"
    return None


def _event_id(message_id: str | None, raw: bytes) -> str:
    """The provider event id the delivery event is deduplicated by: the message's Message-ID,
    or a digest of the message when it has none (or an absurdly long one)."""
    if message_id and len(message_id) <= _MAX_EVENT_ID:
        return message_id
    source = message_id.encode() if message_id else raw
    return "sha256:" + hashlib.sha256(source).hexdigest()


def _count(event: InboundEvent, outcome: dict[str, Any], out: PollResult) -> None:
    if outcome["duplicates"]:
        out.duplicates += 1
    elif event.kind == "bounced":
        out.bounces += 1
    else:
        out.replies += 1
        kind = str(event.detail["classification"])
        out.classifications[kind] = out.classifications.get(kind, 0) + 1
