"""Found by the chaos suite: an email left 'sending' by a killed campaign service is failed as
"outcome unknown" by the next sender's sweep; its recipient's follow-up must stop with it (as after
any failed send), or it waits forever and the campaign never finishes sending."""

from __future__ import annotations

import asyncpg
import pytest

from services.campaign.domain.sending import OUTCOME_UNKNOWN
from services.campaign.repository import emails
from shared.settings import Settings
from tests.support.campaign_rows import make_campaign

pytestmark = pytest.mark.integration


async def test_a_swept_send_stops_the_rest_of_its_sequence(
    db: asyncpg.Pool, tag: str, prepared: Settings
) -> None:
    campaign = await make_campaign(
        db, tag, {"ada": "sending", "bob": "sending", "cy": "sending"}, settings=prepared
    )
    ada, bob, cy = campaign.emails
    follow_ups = {}
    for first, status in ((ada, "waiting"), (bob, "waiting"), (cy, "sent")):
        follow_ups[first.address] = await db.fetchval(
            "INSERT INTO campaign.emails (campaign_id, job_id, candidate_id, to_address, subject,"
            " body, status, step, wait_days) SELECT campaign_id, job_id, candidate_id,"
            " to_address, 'Re: ' || subject, body, $2, 1, 3 FROM campaign.emails"
            " WHERE email_id = $1 RETURNING email_id",
            first.email_id,
            status,
        )
    # Ada's and Cy's sends were left by a dead process a minute ago; Bob's is being sent here.
    await db.execute(
        "UPDATE campaign.emails SET updated_at = now() - interval '1 minute'"
        " WHERE email_id = ANY($1::uuid[])",
        [ada.email_id, cy.email_id, bob.email_id],
    )

    swept = await emails.sweep_stuck(db, OUTCOME_UNKNOWN, 30, [bob.email_id])

    assert swept == 2
    rows = {
        row["email_id"]: row
        for row in await db.fetch(
            "SELECT email_id, status, last_error FROM campaign.emails WHERE campaign_id = $1",
            campaign.campaign_id,
        )
    }
    assert rows[ada.email_id]["status"] == rows[cy.email_id]["status"] == "failed"
    assert rows[follow_ups[ada.address]]["status"] == "stopped"
    assert rows[follow_ups[ada.address]]["last_error"] == "an earlier step was failed"
    assert rows[bob.email_id]["status"] == "sending"  # spared: its outcome is coming
    assert rows[follow_ups[bob.address]]["status"] == "waiting"
    assert rows[follow_ups[cy.address]]["status"] == "sent"  # only unsent steps stop
