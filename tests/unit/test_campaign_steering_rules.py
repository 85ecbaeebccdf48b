"""Steering rules that need no database: which run changes cancel a campaign, and who did it."""

from __future__ import annotations

import uuid

import pytest

from services.campaign.domain.steering import cancelled_run, steer
from shared.contracts.workflow import WorkflowRunChanged

RUN = uuid.uuid4()


def change(
    status: str, workflow_type: str = "email_campaign", error: str | None = None
) -> WorkflowRunChanged:
    return WorkflowRunChanged(
        run_id=RUN, workflow_type=workflow_type, sequence=7, status=status, state="await_review",
        change="cancelled" if status == "cancelled" else "waiting", error=error,
    )  # fmt: skip


def test_a_cancelled_campaign_run_cancels_its_campaign_and_says_who() -> None:
    assert cancelled_run(change("cancelled", error="cancelled by ats-sync")) == (RUN, "ats-sync")
    assert cancelled_run(change("cancelled", error="cancelled")) == (RUN, None)


@pytest.mark.parametrize(
    "event",
    [change("waiting"), change("failed"), change("cancelled", workflow_type="noop_three_steps")],
)
def test_other_changes_cancel_nothing(event: WorkflowRunChanged) -> None:
    assert cancelled_run(event) is None


def test_cancelling_twice_changes_nothing_the_second_time() -> None:
    first = steer("awaiting_review", False, "cancel")
    assert (first.changed, first.status) == (True, "cancelled")
    assert not steer("cancelled", False, "cancel").changed
