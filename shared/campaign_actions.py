"""The campaign service's workflow actions and the email campaign's params: the contracts between
the workflow engine (which runs `email_campaign`) and the campaign service (which performs its
steps)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.actions import action
from shared.events import Slots

EMAIL_CAMPAIGN = "email_campaign"  # the workflow type; its run id is its campaign's id
MAX_REVIEW_HOURS = 720.0  # 30 days: a review left longer than that is forgotten, not pending
MAX_MONITOR_HOURS = 2_160.0  # 90 days

# Signals the campaign service sends a campaign's run (`workflow.signals`, run id = campaign id)
REVIEW_FINISHED = "review_finished"  # no draft is pending any more
SENDING_FINISHED = "sending_finished"  # review finished and no approved email is left to send
MONITORING_CLOSED = "monitoring_closed"  # a recruiter closed the campaign before its window ended


class EmailCampaignParams(BaseModel):
    """What an email campaign run starts with; a run started from an intent gets these from it."""

    model_config = ConfigDict(extra="forbid")

    slots: Slots = Field(..., description="Who to write to and about which job.")
    requested_by: str | None = Field(None, description="The recruiter who asked, if known.")
    message: str | None = Field(None, description="The request as written, for the log.")
    review_hours: float = Field(
        72,
        gt=0,
        le=MAX_REVIEW_HOURS,
        description="How long the drafts wait for review before the campaign expires.",
    )
    monitor_hours: float = Field(
        168,
        gt=0,
        le=MAX_MONITOR_HOURS,
        description="How long after sending the campaign keeps watching replies and bounces.",
    )


class ExtractCandidatesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID = Field(..., description="The campaign's id: the workflow run's id.")
    slots: Slots
    requested_by: str | None = None


class ExtractCandidatesOutput(BaseModel):
    job_id: uuid.UUID
    job_title: str = Field(..., examples=["Staff Backend Engineer"])
    recipients: int = Field(..., ge=1, description="Candidates the campaign will write to.")


class GenerateDraftsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID


class GenerateDraftsOutput(BaseModel):
    drafted: int = Field(..., ge=0, description="Drafts the campaign has, waiting for review.")
    mode: Literal["template", "model"]


EXTRACT_CANDIDATES = action(
    "campaign.extract_candidates",
    ExtractCandidatesInput,
    ExtractCandidatesOutput,
    "Resolve the job the slots name, create the campaign and store its ranked recipients. "
    "Asks which job (needs_input, with the open jobs as choices) when the title names no single "
    "open job, and fails with "
    "no_candidates when nobody matches.",
)
GENERATE_DRAFTS = action(
    "campaign.generate_drafts",
    GenerateDraftsInput,
    GenerateDraftsOutput,
    "Write one draft, footer included, for every recipient that has none; the campaign then "
    "awaits review.",
)


class ExpireDraftsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID


class ExpireDraftsOutput(BaseModel):
    expired: int = Field(..., ge=0, description="Drafts still pending at the deadline.")


EXPIRE_DRAFTS = action(
    "campaign.expire_drafts",
    ExpireDraftsInput,
    ExpireDraftsOutput,
    "At the review deadline: every draft still pending expires and is never sent (approved ones "
    "are still sent).",
)


class CloseCampaignInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID


class CloseCampaignOutput(BaseModel):
    status: str = Field(..., description="The campaign's status after closing (completed).")
    counts: dict[str, int] = Field(..., description="The campaign's final counts.")


CLOSE_CAMPAIGN = action(
    "campaign.close_campaign",
    CloseCampaignInput,
    CloseCampaignOutput,
    "At the end of the monitoring window (or after a recruiter closed it): the campaign is "
    "completed, with its final counts.",
)
