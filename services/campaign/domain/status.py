"""The statuses of a campaign and of its emails, and which changes of a campaign's status are
allowed: the one state machine every status change goes through
(`repository.campaigns.move_campaign`).

A campaign is extracted, drafted, reviewed, sent and monitored, in that order; it can stop early
by expiring (its review deadline passed), failing or being cancelled. A status it can leave only
forward never comes back, so a late or repeated event (a second `review_finished`, an expiry after
the review) finds the campaign elsewhere and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from shared.contracts.campaign import CampaignStatus

CAMPAIGN_STATUSES: tuple[CampaignStatus, ...] = get_args(CampaignStatus)

# Where a campaign may go from each status; an end status goes nowhere.
TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    "extracting": frozenset({"generating", "failed", "cancelled", "expired"}),
    "generating": frozenset({"awaiting_review", "failed", "cancelled", "expired"}),
    "awaiting_review": frozenset({"sending", "failed", "cancelled", "expired"}),
    "sending": frozenset({"monitoring", "failed", "cancelled"}),
    "monitoring": frozenset({"completed"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}
ENDED: frozenset[CampaignStatus] = frozenset(s for s, to in TRANSITIONS.items() if not to)


def can_move(current: CampaignStatus, target: CampaignStatus) -> bool:
    """Whether a campaign in `current` may move to `target`."""
    return target in TRANSITIONS[current]


def sources(target: CampaignStatus) -> tuple[CampaignStatus, ...]:
    """The statuses a campaign can reach `target` from, in lifecycle order."""
    return tuple(s for s in CAMPAIGN_STATUSES if target in TRANSITIONS[s])


# ---- Emails ----------------------------------------------------------------------------------

# Emails per status: (how many, how many of them have a `sent_at`).
StatusCounts = Mapping[str, tuple[int, int]]


def count_of(statuses: StatusCounts, *names: str) -> int:
    """How many emails are in any of the statuses `names`."""
    return sum(statuses.get(name, (0, 0))[0] for name in names)


# Statuses an email reaches only by being approved: approving it again changes nothing.
APPROVED_STATUSES: frozenset[str] = frozenset(
    {"approved", "sending", "sent", "failed", "bounced", "waiting"}
)
# Still to be sent: a campaign with none of these has finished sending ('waiting': a follow-up
# whose step before it has not gone yet).
OPEN_STATUSES: tuple[str, ...] = ("approved", "sending", "waiting")
# The candidate heard (or is about to hear) about the job. 'rejected', 'expired' and 'failed'
# drafts never reached them, so they do not count as contact.
CONTACTED_STATUSES: tuple[str, ...] = ("drafted", "approved", "sending", "sent", "bounced")
# Opens and clicks count only for emails that went out; a reviewer previewing a draft is no reader.
TRACKED_STATUSES: frozenset[str] = frozenset({"sent"})
