"""The bare SMTP loop the campaign benchmark compares the product with: the campaign's own emails,
read back from the database once the product has sent them, each built with the product's message
builder (the same headers, footer, tracked links and open pixel) and sent with aiosmtplib over the
same number of persistent connections into the same sink, and nothing else: no claim, no record,
no outbox, no pacing. That is what sending these emails costs on this machine at least; the
benchmark reports the product's rate as a share of it.

Also timed: the same messages built beforehand, so the loop is the SMTP transport alone.

Run in a process of its own, as the product's sender is, so that it does not share an interpreter
with the sink: `python -m bench.smtp_loop PORT CONNECTIONS DATABASE_URL CAMPAIGN_ID` prints one
JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiosmtplib
import asyncpg

from services.campaign.domain.composing import SenderIdentity
from services.campaign.domain.links import TrackingLinks, UnsubscribeLinks
from services.campaign.domain.messages import build_message, envelope_of, wire_bytes
from services.campaign.domain.sending import OutgoingEmail
from shared.settings import Settings

Wire = tuple[str, list[str], bytes]


async def load(database_url: str, campaign_id: uuid.UUID) -> list[OutgoingEmail]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT e.email_id, e.to_address, e.subject, e.body, e.message_id,"
            " j.title AS job_title, c.found_via FROM campaign.emails e"
            " JOIN campaign.jobs j USING (job_id) JOIN campaign.candidates c USING (candidate_id)"
            " WHERE e.campaign_id = $1 AND e.step = 0 ORDER BY e.email_id",
            campaign_id,
        )
    finally:
        await conn.close()
    return [OutgoingEmail(**dict(row)) for row in rows]


def builder(settings: Settings) -> Callable[[OutgoingEmail], Wire]:
    """The message as the product's sender builds it, with its settings' links and tracking."""
    sender = SenderIdentity.from_settings(settings)
    links = UnsubscribeLinks.from_settings(settings)
    tracking = TrackingLinks.from_settings(settings) if settings.track_opens_and_clicks else None

    def build(email: OutgoingEmail) -> Wire:
        message = build_message(email, sender, links, tracking=tracking)
        mail_from, recipients = envelope_of(message)
        return mail_from, recipients, wire_bytes(message)

    return build


async def send_all(
    port: int, connections: int, emails: list[OutgoingEmail], build: Callable[[OutgoingEmail], Wire]
) -> float:
    """Seconds to build and send every email, `connections` at a time."""
    shares = [emails[i::connections] for i in range(connections)]

    async def one_connection(share: list[OutgoingEmail]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        await smtp.connect()
        try:
            for email in share:
                mail_from, recipients, data = build(email)
                await smtp.sendmail(mail_from, recipients, data)
        finally:
            await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(share) for share in shares))
    return time.perf_counter() - started


async def measure(
    port: int, connections: int, database_url: str, campaign_id: str
) -> dict[str, Any]:
    emails = await load(database_url, uuid.UUID(campaign_id))
    build = builder(Settings())
    built_and_sent = await send_all(port, connections, emails, build)
    wires = {email.email_id: build(email) for email in emails}
    transport = await send_all(port, connections, emails, lambda email: wires[email.email_id])
    count = len(emails)
    return {
        "emails": count,
        "seconds": round(built_and_sent, 3),
        "emails_per_second": round(count / built_and_sent, 1),
        "transport_only_emails_per_second": round(count / transport, 1),
    }


def main(argv: list[str]) -> int:
    port, connections, database_url, campaign_id = argv[1:5]
    result = asyncio.run(measure(int(port), int(connections), database_url, campaign_id))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
