"""The workflow definitions every engine runs.

`email_campaign` version 1 ends once the drafts are reviewed; sending the approved ones and
monitoring replies and bounces are added in version 2 (runs keep the version they started with).
"""

from __future__ import annotations

from datetime import timedelta

from services.workflow.domain.definitions import Definition, End, RunData, Task, Wait
from shared.campaign_actions import EXTRACT_CANDIDATES, GENERATE_DRAFTS, EmailCampaignParams


def _extraction_input(run: RunData) -> dict[str, object]:
    return {
        "campaign_id": run.run_id,  # the campaign is the run's, under the same id
        "slots": run.params["slots"],
        "requested_by": run.params.get("requested_by"),
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

DEFINITIONS: list[Definition] = [EMAIL_CAMPAIGN_V1]
