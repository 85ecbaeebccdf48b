"""The mailer against a real SMTP server (aiosmtpd on loopback): what arrives, how refusals and
network trouble are classified, and that connections are reused, bounded and replaced."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from deploy.servers import free_port
from services.campaign.domain.composing import (
    CandidateProfile,
    JobOpening,
    SenderIdentity,
    TemplateComposer,
)
from services.campaign.domain.links import UnsubscribeLinks, verify_unsubscribe_token
from services.campaign.domain.messages import build_message
from services.campaign.domain.sending import OutgoingEmail, PermanentFailure, Sent, TemporaryFailure
from services.campaign.mailer import Mailer, SmtpConfig
from shared.settings import Settings
from tests.support.smtp import SmtpTestServer

pytestmark = pytest.mark.integration

SENDER = SenderIdentity("Grace Hopper", "grace@acme.example", "Acme Robotics", "1 Harbour Road")
LINKS = UnsubscribeLinks("https://jobs.acme.example", "s" * 40, mailto="leave@acme.example")


@pytest.fixture
async def mailer(smtp: SmtpTestServer) -> AsyncIterator[Mailer]:
    settings = Settings(environment="test", smtp_port=smtp.port, smtp_pool_size=1)
    async with Mailer(SmtpConfig.from_settings(settings)) as mailer:
        yield mailer


def email_to(address: str, body: str = "Hi Ada,\n\nInterested?") -> OutgoingEmail:
    return OutgoingEmail(
        email_id=uuid.uuid4(),
        to_address=address,
        subject="Staff Backend Engineer at Acme Robotics",
        body=body,
        job_title="Staff Backend Engineer",
        found_via="GitHub",
    )


def recipient() -> str:
    return f"ada-{uuid.uuid4().hex[:8]}@example.org"


async def test_an_approved_email_arrives_personalised_and_unsubscribable(
    smtp: SmtpTestServer, mailer: Mailer
) -> None:
    person = CandidateProfile(full_name="Ada Lovelace", first_name="Ada", skills=["python"])
    opening = JobOpening(job_id=uuid.uuid4(), title="Staff Backend Engineer", skills=["python"])
    draft = TemplateComposer().compose(person, opening, SENDER)
    to = recipient()
    email = email_to(to, draft.body)

    outcome = await mailer.send(build_message(email, SENDER, LINKS))

    assert isinstance(outcome, Sent)
    assert outcome.message_id == f"<{email.email_id}@acme.example>"
    [received] = smtp.messages
    assert received.mail_from == "grace@acme.example"
    assert received.rcpt_tos == (to,)
    message = received.message
    assert message["From"] == "Grace Hopper <grace@acme.example>"
    assert message["To"] == to
    assert message["Subject"] == "Staff Backend Engineer at Acme Robotics"
    assert message["Message-ID"] == f"<{email.email_id}@acme.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url, mailto = (part.strip(" <>") for part in str(message["List-Unsubscribe"]).split(","))
    assert url.startswith("https://jobs.acme.example/u/")
    assert mailto.startswith("mailto:leave@acme.example?subject=unsubscribe%20")
    assert verify_unsubscribe_token(url.rsplit("/", 1)[1], LINKS.secret) == email.email_id
    body = received.body
    assert body.startswith("Hi Ada,")
    assert "python" in body
    assert f"Unsubscribe with one click: {url}" in body
    assert "1 Harbour Road" in body
    assert "via GitHub" in body


async def test_a_retry_sends_the_same_message_id(smtp: SmtpTestServer, mailer: Mailer) -> None:
    email = email_to(recipient())
    first = await mailer.send(build_message(email, SENDER, LINKS))
    second = await mailer.send(build_message(email, SENDER, LINKS))
    assert isinstance(first, Sent)
    assert first == second
    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert ids == [first.message_id, first.message_id]
    assert first.message_id == f"<{email.email_id}@acme.example>"


async def test_refusals_are_classified_and_the_connection_carries_on(
    smtp: SmtpTestServer, mailer: Mailer
) -> None:
    gone, busy, fine = recipient(), recipient(), recipient()
    smtp.reject_permanently(gone)
    smtp.reject_temporarily(busy)

    bounced = await mailer.send(build_message(email_to(gone), SENDER, LINKS))
    deferred = await mailer.send(build_message(email_to(busy), SENDER, LINKS))
    delivered = await mailer.send(build_message(email_to(fine), SENDER, LINKS))

    assert bounced == PermanentFailure(550, "5.1.1 Mailbox unavailable", hard_bounce=True)
    assert deferred == TemporaryFailure(451, "4.3.0 Mailbox busy, try again later")
    assert isinstance(delivered, Sent)
    assert [m.rcpt_tos for m in smtp.messages] == [(fine,)]
    assert mailer.connections_opened == 1  # a refusal does not cost the connection


async def test_many_emails_share_one_connection(smtp: SmtpTestServer, mailer: Mailer) -> None:
    for _ in range(20):
        assert isinstance(
            await mailer.send(build_message(email_to(recipient()), SENDER, LINKS)), Sent
        )
    assert len(smtp.messages) == 20
    assert len({m.peer for m in smtp.messages}) == 1
    assert mailer.connections_opened == 1


async def test_concurrent_sends_stay_within_the_pool(smtp: SmtpTestServer) -> None:
    emails = [email_to(recipient()) for _ in range(30)]
    async with Mailer(SmtpConfig(port=smtp.port, pool_size=3)) as mailer:
        outcomes = await asyncio.gather(
            *(mailer.send(build_message(e, SENDER, LINKS)) for e in emails)
        )
    assert all(isinstance(o, Sent) for o in outcomes)
    assert sorted(m.message["Message-ID"] for m in smtp.messages) == sorted(
        f"<{e.email_id}@acme.example>" for e in emails
    )
    assert 1 <= len({m.peer for m in smtp.messages}) <= 3
    assert mailer.connections_opened <= 3


async def test_a_dropped_connection_is_replaced(smtp: SmtpTestServer) -> None:
    async with Mailer(SmtpConfig(port=smtp.port, pool_size=1), idle_check_seconds=0) as mailer:
        assert isinstance(
            await mailer.send(build_message(email_to(recipient()), SENDER, LINKS)), Sent
        )
        smtp.drop_connections()  # as a server's idle timeout would
        assert isinstance(
            await mailer.send(build_message(email_to(recipient()), SENDER, LINKS)), Sent
        )
        assert mailer.connections_opened == 2
    assert len({m.peer for m in smtp.messages}) == 2


async def test_no_server_is_a_temporary_failure() -> None:
    async with Mailer(SmtpConfig(port=free_port(), timeout_seconds=2)) as mailer:
        outcome = await mailer.send(build_message(email_to(recipient()), SENDER, LINKS))
    assert isinstance(outcome, TemporaryFailure)
    assert outcome.code is None


async def test_a_silent_server_times_out_as_a_temporary_failure() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        async with Mailer(SmtpConfig(port=port, timeout_seconds=0.3)) as mailer:
            outcome = await mailer.send(build_message(email_to(recipient()), SENDER, LINKS))
        assert isinstance(outcome, TemporaryFailure)
        assert time.monotonic() - started < 5
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_mailer_logs_in_when_the_relay_requires_it() -> None:
    with SmtpTestServer(credentials=("mailer", "s3cret")) as smtp:
        good = SmtpConfig(port=smtp.port, username="mailer", password="s3cret")
        async with Mailer(good) as mailer:
            assert isinstance(
                await mailer.send(build_message(email_to(recipient()), SENDER, LINKS)), Sent
            )
        wrong = SmtpConfig(port=smtp.port, username="mailer", password="nope")
        async with Mailer(wrong) as mailer:
            refused = await mailer.send(build_message(email_to(recipient()), SENDER, LINKS))
        async with Mailer(SmtpConfig(port=smtp.port)) as mailer:
            anonymous = await mailer.send(build_message(email_to(recipient()), SENDER, LINKS))
        assert len(smtp.messages) == 1
    # A refused login is our configuration, never a reason to suppress the candidate's address.
    assert isinstance(refused, PermanentFailure)
    assert (refused.code, refused.hard_bounce) == (535, False)
    assert isinstance(anonymous, PermanentFailure)
    assert (anonymous.code, anonymous.hard_bounce) == (530, False)
