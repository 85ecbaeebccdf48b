"""The campaign service's monitoring commands (request/reply from the gateway) and the views it
answers with: a campaign's counts, the tracking pixel and click redirect, unsubscribe, and the
inbound delivery-events webhook."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CampaignStatus = Literal[
    "extracting", "generating", "awaiting_review", "sending", "monitoring",
    "completed", "failed", "cancelled", "expired",
]  # fmt: skip
FINISHED_CAMPAIGN_STATUSES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "expired"}
)
InboundKind = Literal[
    "replied", "bounced", "complained", "delivered", "opened", "clicked", "unsubscribed"
]
MAX_INBOUND_EVENTS = 500

Token = Field(..., min_length=1, max_length=200, description="The signed token from the link.")


class GetCampaignCommand(BaseModel):
    """A campaign's status, job and counts."""

    type: Literal["get_campaign"] = "get_campaign"
    campaign_id: uuid.UUID


class TrackOpenCommand(BaseModel):
    """The tracking pixel was fetched: record the email's first open."""

    type: Literal["track_open"] = "track_open"
    token: str = Token


class TrackClickCommand(BaseModel):
    """A tracked link was followed: answer the URL to redirect to, if the email contains it."""

    type: Literal["track_click"] = "track_click"
    token: str = Token
    url: str = Field(..., min_length=1, max_length=2_000)


class PreviewUnsubscribeCommand(BaseModel):
    """Whether an unsubscribe token is valid, and whether its address is already suppressed."""

    type: Literal["preview_unsubscribe"] = "preview_unsubscribe"
    token: str = Token


class UnsubscribeCommand(BaseModel):
    """Suppress the address an unsubscribe token names, for every later campaign."""

    type: Literal["unsubscribe"] = "unsubscribe"
    token: str = Token
    one_click: bool = Field(False, description="An RFC 8058 one-click POST from a mail client.")


class InboundEvent(BaseModel):
    """One delivery event reported by a mail provider or relay (a reply, a bounce, ...)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "message_id": "<3f0c...@example.com>",
                    "kind": "bounced",
                    "detail": {"permanent": True, "smtp_code": 550},
                    "event_id": "provider-evt-123",
                }
            ]
        },
    )

    email_id: uuid.UUID | None = Field(None, description="The email, by our id.")
    message_id: str | None = Field(
        None, min_length=3, max_length=300, description="The email, by its Message-ID."
    )
    kind: InboundKind
    detail: dict[str, Any] = Field(
        default_factory=dict,
        description='Free-form; a bounce says {"permanent": true} for a hard bounce.',
    )
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The provider's id of the event: the same id is recorded once.",
    )
    occurred_at: datetime | None = Field(None, description="When it happened (default: now).")

    @model_validator(mode="after")
    def _names_an_email(self) -> InboundEvent:
        if self.email_id is None and self.message_id is None:
            raise ValueError("each event needs email_id or message_id")
        return self


class RecordEmailEventsCommand(BaseModel):
    """Inbound delivery events from the webhook (already authenticated by the gateway)."""

    type: Literal["record_email_events"] = "record_email_events"
    events: list[InboundEvent] = Field(..., min_length=1, max_length=MAX_INBOUND_EVENTS)


SteeringAction = Literal["pause", "resume", "cancel", "close"]


class SteerCampaignCommand(BaseModel):
    """Pause or resume a campaign's sending, cancel it, or close it after sending."""

    type: Literal["steer_campaign"] = "steer_campaign"
    campaign_id: uuid.UUID
    action: SteeringAction
    requested_by: str | None = Field(None, max_length=200)
    correlation_id: str | None = Field(None, max_length=128)


class StopAllSendingCommand(BaseModel):
    """The emergency stop: pause every campaign that could send (or resume the ones it paused)."""

    type: Literal["stop_all_sending"] = "stop_all_sending"
    resume: bool = False
    requested_by: str | None = Field(None, max_length=200)


class ListCampaignsCommand(BaseModel):
    """A page of campaigns, newest first."""

    type: Literal["list_campaigns"] = "list_campaigns"
    status: CampaignStatus | None = None
    created_by: str | None = Field(None, max_length=200)
    job_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=200)


MonitoringCommand = (
    GetCampaignCommand
    | SteerCampaignCommand
    | StopAllSendingCommand
    | ListCampaignsCommand
    | TrackOpenCommand
    | TrackClickCommand
    | PreviewUnsubscribeCommand
    | UnsubscribeCommand
    | RecordEmailEventsCommand
)


# --- Views ----------------------------------------------------------------------------------


class CampaignCounts(BaseModel):
    """How a campaign's emails stand. Statuses count emails; opened, clicked, replied,
    unsubscribed and complained count distinct emails with at least one such event."""

    model_config = ConfigDict(frozen=True)

    total: int = Field(0, description="Every email of the campaign.")
    drafted: int = Field(0, description="Waiting for review.")
    approved: int = Field(0, description="Approved by a reviewer (including those since sent).")
    rejected: int = 0
    expired: int = Field(0, description="Still pending at the review deadline; never sent.")
    queued: int = Field(0, description="Approved and not yet sent (waiting or being sent).")
    sent: int = Field(0, description="Accepted by the relay (bounced ones included).")
    failed: int = Field(0, description="Gave up sending.")
    bounced: int = 0
    cancelled: int = Field(0, description="Never sent: the campaign was cancelled first.")
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    unsubscribed: int = 0
    complained: int = 0


class CampaignJob(BaseModel):
    job_id: uuid.UUID
    title: str


class DraftingProgress(BaseModel):
    """How far drafting is; while the campaign is 'generating', `generated` grows draft by draft."""

    generated: int = Field(0, description="Recipients who have a draft (whatever its status now).")
    total: int = Field(0, description="Recipients extracted for the campaign.")


class CampaignSummary(BaseModel):
    campaign_id: uuid.UUID
    run_id: uuid.UUID = Field(..., description="The workflow run that drives the campaign.")
    name: str
    status: CampaignStatus
    paused: bool = Field(False, description="Sending is paused until the campaign is resumed.")
    paused_at: datetime | None = None
    paused_by: str | None = None
    ended_by: str | None = Field(None, description="Who cancelled or closed the campaign.")
    job: CampaignJob
    generation_mode: Literal["model", "template"] | None = None
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_CAMPAIGN_STATUSES


class CampaignView(CampaignSummary):
    counts: CampaignCounts
    drafting: DraftingProgress = Field(default_factory=DraftingProgress)


class CampaignPage(BaseModel):
    items: list[CampaignSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class SteeringResult(BaseModel):
    action: SteeringAction
    changed: bool = Field(..., description="False when the campaign was already so.")
    in_flight: int = Field(
        0,
        description="Emails already handed to the SMTP server when the change was made: the "
        "only ones that may still be accepted after a pause or cancel.",
    )
    campaign: CampaignView


class SendingStop(BaseModel):
    paused: bool = Field(..., description="True after a stop, false after a resume.")
    campaigns: list[uuid.UUID] = Field(..., description="The campaigns this call changed.")
    in_flight: int = Field(0, description="Emails already handed to the SMTP server.")


class ClickTarget(BaseModel):
    url: str = Field(..., description="Where to redirect the reader.")
    recorded: bool = Field(..., description="False for a repeated click or an unsent email.")


class UnsubscribeView(BaseModel):
    address_hint: str = Field(..., examples=["a***@example.com"], description="Masked address.")
    unsubscribed: bool = Field(..., description="The address is on the suppression list.")


class RejectedEvent(BaseModel):
    index: int = Field(..., description="Position of the event in the request.")
    reason: str


class InboundResult(BaseModel):
    accepted: int = Field(..., description="Events recorded now.")
    duplicates: int = Field(..., description="Events recorded before (same event id).")
    rejected: list[RejectedEvent] = Field(default_factory=list)
