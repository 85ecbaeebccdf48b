"""The bare SMTP loop the campaign benchmark compares the product with: the same number of emails
as the campaign, each a message of the product's shape (built before the clock starts), sent with
aiosmtplib over the same number of persistent connections into the same sink, and nothing else:
no database, no claim, no record, no pacing. Its rate is the ceiling for the product's sending on
this machine, and the benchmark reports the product's rate as a share of it.

Run in a process of its own (`python -m bench.smtp_loop PORT COUNT CONNECTIONS`, printing one JSON
line), as the product's sender is, so that it does not share an interpreter with the sink.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import aiosmtplib

from services.campaign.domain.composing import SenderIdentity
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.messages import build_message, envelope_of, wire_bytes
from services.campaign.domain.sending import OutgoingEmail

SENDER = SenderIdentity("Bench Sender", "bench@bench.example", "Bench Ltd", "1 Bench Street")
LINKS = UnsubscribeLinks("http://127.0.0.1:8000", "bench-unsubscribe-secret-" + "x" * 16)
BODY = (
    "Hi Cand,\n\nI came across your profile on the bench and thought of our Bench Backend "
    "Engineer role: benchlang and postgresql, in Berlin, with a team that ships every day.\n\n"
    "Would you be open to a short call this week?\n\nBest regards,\nBench Sender\n"
)


def messages(count: int) -> list[tuple[str, list[str], bytes]]:
    """`count` messages as the sender builds them (headers, footer, one-click unsubscribe)."""
    built = []
    for i in range(count):
        email = OutgoingEmail(
            email_id=uuid.uuid4(),
            to_address=f"loop{i}@bench.example",
            subject="Bench Backend Engineer at Bench Ltd",
            body=BODY,
            job_title="Bench Backend Engineer",
            found_via="the bench",
        )
        message = build_message(email, SENDER, LINKS)
        sender, recipients = envelope_of(message)
        built.append((sender, recipients, wire_bytes(message)))
    return built


async def send_all(port: int, count: int, connections: int) -> dict[str, float]:
    queue = messages(count)
    per_connection = [queue[i::connections] for i in range(connections)]

    async def one_connection(share: list[tuple[str, list[str], bytes]]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        await smtp.connect()
        try:
            for sender, recipients, data in share:
                await smtp.sendmail(sender, recipients, data)
        finally:
            await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(share) for share in per_connection))
    seconds = time.perf_counter() - started
    return {"emails": count, "seconds": round(seconds, 3), "emails_per_second": count / seconds}


def main(argv: list[str]) -> int:
    port, count, connections = (int(value) for value in argv[1:4])
    result = asyncio.run(send_all(port, count, connections))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
