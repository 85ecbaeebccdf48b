"""The campaign status machine and the counts derived from emails per status."""

from __future__ import annotations

from itertools import pairwise

import pytest

from services.campaign.domain.review import review_counts_from
from services.campaign.domain.sending import sending_counts_from
from services.campaign.domain.status import (
    CAMPAIGN_STATUSES,
    ENDED,
    TRANSITIONS,
    can_move,
    sources,
)
from shared.contracts.campaign import FINISHED_CAMPAIGN_STATUSES, CampaignStatus


def test_a_campaign_goes_through_its_lifecycle_in_order() -> None:
    path: list[CampaignStatus] = [
        "extracting", "generating", "awaiting_review", "sending", "monitoring", "completed",
    ]  # fmt: skip
    for current, target in pairwise(path):
        assert can_move(current, target), (current, target)
        assert not can_move(target, current), (target, current)


@pytest.mark.parametrize("ended", sorted(ENDED))
def test_an_ended_campaign_moves_nowhere(ended: CampaignStatus) -> None:
    assert all(not can_move(ended, target) for target in CAMPAIGN_STATUSES)


def test_the_ended_statuses_are_the_contracts_finished_ones() -> None:
    assert ENDED == FINISHED_CAMPAIGN_STATUSES
    assert set(TRANSITIONS) == set(CAMPAIGN_STATUSES)


def test_review_deadline_expires_only_a_campaign_not_yet_sending() -> None:
    assert sources("expired") == ("extracting", "generating", "awaiting_review")
    assert sources("sending") == ("awaiting_review",)
    assert sources("monitoring") == ("sending",)


def test_counts_come_from_emails_per_status() -> None:
    statuses = {
        "drafted": (2, 0),
        "approved": (3, 0),
        "sending": (1, 0),
        "sent": (4, 4),
        "bounced": (1, 1),
        "failed": (1, 0),
        "rejected": (5, 0),
    }
    review = review_counts_from(statuses)
    assert (review.drafted, review.approved, review.rejected, review.expired) == (2, 10, 5, 0)
    sending = sending_counts_from(statuses)
    assert (sending.open, sending.sent, sending.failed, sending.bounced) == (4, 4, 1, 1)
