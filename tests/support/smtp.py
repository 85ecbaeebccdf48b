"""A real SMTP server for tests: aiosmtpd on a free loopback port, in a thread of the pytest
process, recording every message and refusing chosen recipients the way a real server would.

    with SmtpTestServer() as smtp:
        smtp.reject_permanently("gone@example.org")       # 550 at RCPT: a hard bounce
        smtp.reject_temporarily("busy@example.org")       # 451 at RCPT: try again later
        ... send to smtp.host, smtp.port ...
        [received] = smtp.messages
        received.message["Subject"]

`Received.peer` is the client's end of the connection, so tests can tell how many SMTP sessions
carried the messages. `drop_connections()` closes every client connection from the server side,
as an idle timeout or a restart would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from deploy.servers import free_port

PERMANENT_REPLY = "550 5.1.1 Mailbox unavailable"
TEMPORARY_REPLY = "451 4.3.0 Mailbox busy, try again later"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple[str, int]
    accepted_at: float = 0.0  # time.monotonic() when the server answered 250 to the data

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the message has no text/plain part"
        return cast(str, cast(EmailMessage, part).get_content())


class _Handler:
    """aiosmtpd's hooks: refuse what the server was told to refuse, record the rest."""

    def __init__(self, owner: SmtpTestServer) -> None:
        self._owner = owner

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # Checked here rather than with aiosmtpd's auth_required, which warns without TLS.
        if self._owner.requires_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self._owner.refusal_for(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        peer = cast(tuple[str, int], tuple(session.peer or ("", 0))[:2])
        if self._owner.data_delay_seconds:  # a slow server: the message is in flight meanwhile
            await asyncio.sleep(self._owner.data_delay_seconds)
        received = Received(
            str(envelope.mail_from),
            tuple(envelope.rcpt_tos),
            bytes(content),
            peer,
            time.monotonic(),
        )
        self._owner.record(received)
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    """Keeps each session's protocol object, so the server can hang up on its clients."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        smtp = cast(SMTP, super().factory())  # type: ignore[no-untyped-call]  # unannotated upstream
        self.sessions.append(smtp)
        return smtp


class SmtpTestServer:
    """An SMTP server on 127.0.0.1; `credentials` makes it require AUTH (over plain text)."""

    def __init__(
        self, *, credentials: tuple[str, str] | None = None, data_delay_seconds: float = 0.0
    ) -> None:
        self.host = "127.0.0.1"
        self.data_delay_seconds = data_delay_seconds  # how long each message's DATA takes
        self.port = free_port()
        self._credentials = credentials
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._refusals: dict[str, str] = {}
        self._controller: _Controller | None = None

    @property
    def requires_auth(self) -> bool:
        return self._credentials is not None

    @property
    def env(self) -> dict[str, str]:
        """The settings that make a service send its email here."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port)}

    def start(self) -> SmtpTestServer:
        auth: dict[str, Any] = {}
        if self._credentials is not None:
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _Controller(_Handler(self), hostname=self.host, port=self.port, **auth)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- scripting ----

    def reject_permanently(self, address: str, reply: str = PERMANENT_REPLY) -> None:
        self._refuse(address, reply)

    def reject_temporarily(self, address: str, reply: str = TEMPORARY_REPLY) -> None:
        self._refuse(address, reply)

    def accept(self, address: str) -> None:
        with self._lock:
            self._refusals.pop(address.lower(), None)

    def drop_connections(self) -> None:
        """Close every client connection from the server's side, and wait until it is done."""
        controller = self._require_controller()

        async def hang_up() -> None:
            for smtp in controller.sessions:
                if smtp.transport is not None:
                    smtp.transport.close()

        asyncio.run_coroutine_threadsafe(hang_up(), controller.loop).result(timeout=5)

    # ---- what arrived ----

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def messages_to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in map(str.lower, m.rcpt_tos)]

    async def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Received]:
        """For callers that do not wait for the send themselves (a service in another process)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages arrived")
            await asyncio.sleep(0.01)
        return self.messages

    # ---- used by the handler, in the server's thread ----

    def refusal_for(self, address: str) -> str | None:
        with self._lock:
            return self._refusals.get(address.lower())

    def record(self, received: Received) -> None:
        with self._lock:
            self._messages.append(received)

    def _refuse(self, address: str, reply: str) -> None:
        with self._lock:
            self._refusals[address.lower()] = reply

    def _require_controller(self) -> _Controller:
        if self._controller is None:
            raise RuntimeError("the SMTP test server is not running")
        return self._controller

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        expected = self._credentials
        ok = (
            isinstance(auth_data, LoginPassword)
            and expected is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == expected
        )
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535
