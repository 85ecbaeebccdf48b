"""What a person's pause, resume, cancel or close does to a campaign in each status.

Pausing is a flag beside the status (a campaign can be paused while it is drafted, reviewed or
sent): a paused campaign's emails are not claimed for sending until it is resumed; review goes on.
Cancelling ends a campaign that has not finished sending: nothing more is sent and its pending
drafts and unsent approvals are cancelled. Closing ends the monitoring of a campaign that has
sent everything, before its window is over. Asking for what is already so changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from services.campaign.domain.status import ENDED, can_move
from shared.contracts.campaign import EMAIL_CAMPAIGN, CampaignStatus, SteeringAction
from shared.contracts.workflow import WorkflowRunChanged
from shared.errors import Refused

# A campaign in one of these may still send email: pausing it means something.
MAY_SEND: frozenset[CampaignStatus] = frozenset(
    {"extracting", "generating", "awaiting_review", "sending"}
)


@dataclass(frozen=True)
class Steering:
    """The change to store: the campaign's new status (None: unchanged) and paused flag."""

    status: CampaignStatus | None
    paused: bool
    changed: bool


def steer(status: CampaignStatus, paused: bool, action: SteeringAction) -> Steering:
    """The change `action` makes to a campaign in `status`; Refused (conflict) when it cannot."""
    unchanged = Steering(None, paused, changed=False)
    if action == "pause":
        if status not in MAY_SEND:
            raise _conflict(status, "paused", "it has nothing left to send")
        return unchanged if paused else Steering(None, True, changed=True)
    if action == "resume":
        if status in ENDED:
            raise _conflict(status, "resumed", "it has ended")
        return Steering(None, False, changed=True) if paused else unchanged
    if action == "cancel":
        return _end(status, paused, "cancelled", "it has finished sending; close it instead")
    return _end(status, paused, "completed", "it is still sending; cancel it to stop it")


def _end(
    status: CampaignStatus,
    paused: bool,
    target: Literal["cancelled", "completed"],
    otherwise: str,
) -> Steering:
    if status == target:
        return Steering(None, paused, changed=False)
    if not can_move(status, target):
        verb = "cancelled" if target == "cancelled" else "closed"
        raise _conflict(status, verb, "it has ended" if status in ENDED else otherwise)
    return Steering(target, False, changed=True)


def _conflict(status: CampaignStatus, verb: str, why: str) -> Refused:
    return Refused(f"the campaign is {status}, so it cannot be {verb}: {why}", code="conflict")


def may_decide(status: CampaignStatus) -> None:
    """Review decisions are refused once the campaign has ended (cancelled, expired, ...)."""
    if status in ENDED:
        raise Refused(
            f"the campaign is {status}: its drafts can no longer be decided", code="conflict"
        )


_CANCELLED_BY = "cancelled by "


def cancelled_run(event: WorkflowRunChanged) -> tuple[uuid.UUID, str | None] | None:
    """The campaign to cancel when `event` says an email campaign's run was cancelled, whoever
    cancelled it (the gateway, or another system through the workflow API): the run's id, which
    is the campaign's, and who cancelled, as the run records it. Else None."""
    if event.workflow_type != EMAIL_CAMPAIGN or event.status != "cancelled":
        return None
    error = event.error or ""
    by = error.removeprefix(_CANCELLED_BY) if error.startswith(_CANCELLED_BY) else None
    return event.run_id, by
