"""When a campaign's email may go: the sender identities (SENDER_IDENTITIES_FILE), the limits they
share in Redis (daily cap, spacing, global rate), the recipient's sending window, the
contact-frequency cap and the clock. The sender asks it before each claim, and the campaign view
asks it why the next email waits (`next_send`). See docs/email.md, "Pacing"; the rules are
`domain/pacing.py` and `domain/windows.py`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.campaign.domain.pacing import Reservation, WallClock, utc_now
from services.campaign.domain.windows import SendingWindow, recipient_zone
from services.campaign.mailer import Mailbox, Mailboxes
from services.campaign.repository import emails
from shared.contracts.campaign import NextSend
from shared.db import Connection
from shared.settings import Settings

if TYPE_CHECKING:
    from services.campaign.throttle import RedisThrottle

log = logging.getLogger(__name__)

# An email put off to its recipient's window carries this in last_error, which is how the
# campaign view tells "waiting for the window" from "waiting to retry".
WINDOW_WAIT = "waiting for the recipient's sending window"


class Pacing:
    """What decides when an email may go, shared by the Sender and the campaign view: the sender
    identities, the limits they share in Redis (`throttle`; None: no shared limits), the sending
    window, the contact-frequency cap and the clock."""

    def __init__(
        self,
        settings: Settings,
        throttle: RedisThrottle | None,
        *,
        mailboxes: Mailboxes | None = None,
        clock: WallClock = utc_now,
    ) -> None:
        self.mailboxes = mailboxes or Mailboxes.from_settings(settings)
        self.throttle = throttle
        self.window = SendingWindow.parse(
            settings.send_window_days, settings.send_window_start, settings.send_window_end
        )
        self.frequency_days = settings.send_contact_frequency_days
        self.clock = clock
        if throttle is None and any(
            m.pace.daily_cap > 0 or m.pace.spacing_seconds > 0
            for m in [self.mailboxes.default, *self.mailboxes.by_user.values()]
        ):
            log.warning("no Redis client: the daily cap and spacing are not applied")

    def window_wait(self) -> str:
        """The last_error of an email put off to its recipient's window."""
        return f"{WINDOW_WAIT} ({self.window.describe()})"

    def limits(self, mailbox: Mailbox) -> bool:
        """Whether a send from this identity needs a reservation."""
        return self.throttle is not None and self.throttle.applies_to(mailbox.pace)

    async def reserve(self, mailbox: Mailbox, now: datetime) -> Reservation:
        if self.throttle is None:
            return Reservation(at=now)
        return await self.throttle.reserve(mailbox.pace, now)

    async def release(self, slot: Reservation) -> None:
        if self.throttle is not None:
            await self.throttle.release(slot)

    def window_closed(self, row: Any, mailbox: Mailbox, now: datetime) -> datetime | None:
        """When the recipient's window next opens, if it is closed at `now`; else None."""
        if self.window.always:
            return None
        where = recipient_zone(
            row["recipient_timezone"], row["recipient_city"], mailbox.identity.timezone
        )
        if self.window.is_open(now, where):
            return None
        return self.window.next_open(now, where)

    async def next_send(self, conn: Connection, campaign_id: uuid.UUID) -> NextSend:
        """When the campaign's next email goes and what it waits for, from its first pending
        email, that recipient's window, and the identity's limits (a look: nothing reserved)."""
        row = await emails.first_pending(conn, campaign_id)
        if row is None or row["campaign_status"] == "cancelled":
            return NextSend()
        if row["paused_at"] is not None:
            return NextSend(waiting_for="paused")
        now = self.clock()
        if row["next_attempt_at"] is not None and row["next_attempt_at"] > now:
            window = (row["last_error"] or "").startswith(WINDOW_WAIT)
            return NextSend(at=row["next_attempt_at"], waiting_for="window" if window else "retry")
        mailbox = self.mailboxes.for_user(row["created_by"])
        opens = self.window_closed(row, mailbox, now)
        if opens is not None:
            return NextSend(at=opens, waiting_for="window")
        if self.throttle is None:
            return NextSend(at=now)
        look = await self.throttle.peek(mailbox.pace, now)
        return NextSend(at=look.at, waiting_for=look.waiting_for)
