"""The workflow definitions every engine runs.

`email_campaign` version 1 ended once the drafts were reviewed; version 2 also waits for the
approved emails to be sent and then monitors the campaign; version 3 completes the campaign at the
end of its monitoring window. Runs keep the version they started with,
so version 1 stays registered for them.
"""

from __future__ import annotations

from datetime import timedelta

from services.workflow.domain.definitions import Definition, End, RunData, Task, Wait
from shared.contracts.campaign import (
    CLOSE_CAMPAIGN,
    EXPIRE_DRAFTS,
    EXTRACT_CANDIDATES,
    GENERATE_DRAFTS,
    MONITORING_CLOSED,
    REVIEW_FINISHED,
    SENDING_FINISHED,
    EmailCampaignParams,
)
from shared.contracts.common import DEFAULT_TEAM


def _extraction_input(run: RunData) -> dict[str, object]:
    return {
        "campaign_id": run.run_id,  # the campaign is the run's, under the same id
        "slots": run.params["slots"],
        "requested_by": run.params.get("requested_by"),
        "team": run.params.get("team", DEFAULT_TEAM),  # runs from before teams: the default
        # Given with the run, else asked for in the message ("... with 2 follow-ups").
        "follow_up_days": run.params.get("follow_up_days")
        or run.params["slots"].get("follow_up_days")
        or [],
    }


def _review_deadline(run: RunData) -> timedelta:
    return timedelta(hours=float(run.params["review_hours"]))


EMAIL_CAMPAIGN_V1 = Definition(
    name="email_campaign",
    version=1,
    params=EmailCampaignParams,
    start="extract_candidates",
    states={
        "extract_candidates": Task(
            EXTRACT_CANDIDATES.name, next="generate_drafts", input=_extraction_input
        ),
        "generate_drafts": Task(
            GENERATE_DRAFTS.name,
            next="await_review",
            timeout=timedelta(minutes=10),
            input=lambda run: {"campaign_id": run.run_id},
        ),
        "await_review": Wait(
            "review_finished",
            next="completed",
            deadline=_review_deadline,
            on_deadline="expired",
        ),
        "completed": End("succeeded"),
        "expired": End("expired"),
        "failed": End("failed"),
    },
    description=(
        "Email the candidates that match a request about one open job: extract them, draft one "
        "email each from the job's template, then wait for a recruiter's review. Version 2 adds "
        "sending the approved drafts and monitoring replies and bounces."
    ),
)


def _monitoring_window(run: RunData) -> timedelta:
    return timedelta(hours=float(run.params.get("monitor_hours", 168)))


def _campaign(run: RunData) -> dict[str, object]:
    return {"campaign_id": run.run_id}


EMAIL_CAMPAIGN_V2 = Definition(
    name="email_campaign",
    version=2,
    params=EmailCampaignParams,
    start="extract_candidates",
    states={
        "extract_candidates": Task(
            EXTRACT_CANDIDATES.name, next="generate_drafts", input=_extraction_input
        ),
        # A model drafts a few emails a second at best: 500 recipients take minutes.
        "generate_drafts": Task(
            GENERATE_DRAFTS.name,
            next="await_review",
            timeout=timedelta(minutes=30),
            input=_campaign,
        ),
        # Each approval is sent at once (email.approved); the run waits until no draft is left.
        "await_review": Wait(
            REVIEW_FINISHED,
            next="await_sending",
            deadline=_review_deadline,
            on_deadline="expire_drafts",
        ),
        "expire_drafts": Task(EXPIRE_DRAFTS.name, next="expired", input=_campaign),
        "await_sending": Wait(SENDING_FINISHED, next="monitoring"),
        "monitoring": Wait(
            MONITORING_CLOSED,
            next="completed",
            deadline=_monitoring_window,
            on_deadline="completed",
        ),
        "completed": End("succeeded"),
        "expired": End("expired"),
        "failed": End("failed"),
    },
    description=(
        "Email the candidates that match a request about one open job: extract them, draft one "
        "email each, wait for a recruiter to approve or reject every draft (each approved email is "
        "sent at once), wait until the approved ones are sent, then monitor replies, bounces and "
        "unsubscribes for `monitor_hours`. At the review deadline, pending drafts expire."
    ),
)

EMAIL_CAMPAIGN_V3 = Definition(
    name="email_campaign",
    version=3,
    params=EmailCampaignParams,
    start="extract_candidates",
    states={
        **EMAIL_CAMPAIGN_V2.states,
        # The window's end (or a recruiter's close) completes the campaign too, with its counts.
        "monitoring": Wait(
            MONITORING_CLOSED,
            next="close_campaign",
            deadline=_monitoring_window,
            on_deadline="close_campaign",
        ),
        "close_campaign": Task(CLOSE_CAMPAIGN.name, next="completed", input=_campaign),
    },
    description=(
        "Email the candidates that match a request about one open job: extract them, draft one "
        "email each, wait for a recruiter to approve or reject every draft (each approved email is "
        "sent at once), wait until the approved ones are sent, then monitor replies, bounces and "
        "unsubscribes for `monitor_hours` (or until a recruiter closes the campaign), and complete "
        "the campaign with its final counts. At the review deadline, pending drafts expire."
    ),
)

DEFINITIONS: list[Definition] = [EMAIL_CAMPAIGN_V1, EMAIL_CAMPAIGN_V2, EMAIL_CAMPAIGN_V3]
