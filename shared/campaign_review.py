"""The campaign service's review commands (request/reply from the gateway) and the views it answers
with: list a campaign's emails, approve, reject or edit-then-approve one draft, or decide all the
drafts still pending. The gateway's `/api/campaigns/{id}/emails` endpoints are these, over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EmailStatus = Literal[
    "drafted", "approved", "rejected", "expired", "sending", "sent", "failed", "bounced",
    "cancelled",
]  # fmt: skip
Decision = Literal["approve", "reject"]

# What a reviewer may write; the system's footer comes on top of the body.
MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 5_000


class ListEmailsCommand(BaseModel):
    """A page of a campaign's emails, best-ranked recipient first."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["list_campaign_emails"] = "list_campaign_emails"
    campaign_id: uuid.UUID
    status: EmailStatus | None = Field(None, description="Only emails in this status.")
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the last page.")
    limit: int = Field(50, ge=1, le=200)


class DecideDraftCommand(BaseModel):
    """Approve or reject one draft. An approval may carry an edit (a new subject and/or body):
    the draft is changed, its footer put back, and then approved."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["decide_draft"] = "decide_draft"
    campaign_id: uuid.UUID
    email_id: uuid.UUID
    decision: Decision
    subject: str | None = Field(None, description="Edit: the new subject (approve only).")
    body: str | None = Field(None, description="Edit: the new body, without the footer.")
    reviewed_by: str = Field(..., min_length=1, max_length=200)
    correlation_id: str | None = Field(None, max_length=128)


class DecideAllCommand(BaseModel):
    """Approve or reject every draft of a campaign that is still pending."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["decide_all_drafts"] = "decide_all_drafts"
    campaign_id: uuid.UUID
    decision: Decision
    reviewed_by: str = Field(..., min_length=1, max_length=200)
    correlation_id: str | None = Field(None, max_length=128)


ReviewCommand = ListEmailsCommand | DecideDraftCommand | DecideAllCommand


class EmailView(BaseModel):
    """One email of a campaign, as a reviewer sees it (the body includes the system's footer)."""

    email_id: uuid.UUID
    campaign_id: uuid.UUID
    candidate_id: uuid.UUID
    rank: int | None = Field(None, description="The recipient's rank in the campaign; 1 is best.")
    to_address: str = Field(..., examples=["ada.lovelace@example.com"])
    subject: str
    body: str
    status: EmailStatus
    edited: bool = Field(..., description="The reviewer changed the draft before approving it.")
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    created_at: datetime


class EmailPage(BaseModel):
    items: list[EmailView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class ReviewCounts(BaseModel):
    """Where the review of a campaign stands."""

    drafted: int = Field(..., ge=0, description="Still waiting for a decision.")
    approved: int = Field(..., ge=0, description="Approved (whether or not sent since).")
    rejected: int = Field(..., ge=0)
    expired: int = Field(..., ge=0)


BULK_ITEMS = 50  # emails shown in an approve-all or reject-all answer


class BulkDecisionView(BaseModel):
    """What approve-all or reject-all did."""

    campaign_id: uuid.UUID
    decision: Decision
    decided: int = Field(..., ge=0, description="Drafts this request decided (0: none was left).")
    review: ReviewCounts
    items: list[EmailView] = Field(
        ...,
        description="The first emails this request decided (at most 50: a reply stays small for "
        "a campaign of thousands); list the rest with GET .../emails?status=...",
    )
