"""The campaign service's public messages: its commands (monitoring, steering, review; request/
reply from the gateway) and the views it answers with, the email campaign's params and workflow
actions, and the events it publishes (`email.approved`, `email.delivery`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.actions import action
from shared.contracts.common import DEFAULT_TEAM, TEAM_PATTERN, Event, TeamScope
from shared.contracts.intent import Slots

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
    team: str | None = TeamScope()


class CampaignTimelineCommand(BaseModel):
    """A campaign's funnel over time: emails sent, opened, replied, ... by each hour or day."""

    type: Literal["campaign_timeline"] = "campaign_timeline"
    campaign_id: uuid.UUID
    team: str | None = TeamScope()
    bucket: Literal["hour", "day"] | None = Field(
        None, description="Default: hours, or days when hours would be more than a month's."
    )


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
    team: str | None = TeamScope()
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
    team: str | None = TeamScope()
    status: CampaignStatus | None = None
    created_by: str | None = Field(None, max_length=200)
    job_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=200)


class CampaignStatusCommand(BaseModel):
    """Which of the caller's campaigns a question means, and how it stands."""

    type: Literal["campaign_status"] = "campaign_status"
    requested_by: str | None = Field(None, max_length=200, description="Whose campaigns.")
    team: str | None = TeamScope()
    slots: Slots = Field(default_factory=Slots, description="Job title, city, skills it names.")
    message: str = Field("", max_length=4_000, description="The question as written.")


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


NextSendWait = Literal["window", "daily_cap", "spacing", "rate", "retry", "paused"]


class NextSend(BaseModel):
    """When the campaign's next email goes, and what it waits for (docs/email.md, "Pacing")."""

    at: datetime | None = Field(
        None,
        description="When the next email may go (now, if it is not waiting); null when "
        "nothing is left to send or sending is paused.",
    )
    waiting_for: NextSendWait | None = Field(
        None,
        description="window: the recipient's working hours; daily_cap: the sender identity's "
        "daily cap; spacing: the gap between two of its emails; rate: the global rate; retry: a "
        "temporary failure's retry; paused: the campaign is paused. Null when sending now or "
        "when nothing is left to send.",
    )


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
    team: str = Field(DEFAULT_TEAM, description="The team the campaign belongs to.")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    review_deadline_at: datetime | None = Field(
        None,
        description="When drafts still pending expire: set once the campaign's run starts "
        "waiting for review (`review_hours` after drafting ended), kept afterwards; null "
        "before that, or for a campaign whose run never waited for review.",
    )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_CAMPAIGN_STATUSES


class CampaignView(CampaignSummary):
    counts: CampaignCounts
    drafting: DraftingProgress = Field(default_factory=DraftingProgress)
    next_send: NextSend = Field(
        default_factory=NextSend, description="When the next email goes and why it waits."
    )


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


EmailStatus = Literal[
    "drafted", "approved", "rejected", "expired", "sending", "sent", "failed", "bounced",
    "cancelled", "waiting", "stopped",
]  # fmt: skip


Decision = Literal["approve", "reject"]


# What a reviewer may write; the system's footer comes on top of the body.
# --- Review -----------------------------------------------------------------------------------

MAX_SUBJECT_CHARS = 200


MAX_BODY_CHARS = 5_000


class ListEmailsCommand(BaseModel):
    """A page of a campaign's emails, best-ranked recipient first."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["list_campaign_emails"] = "list_campaign_emails"
    campaign_id: uuid.UUID
    team: str | None = TeamScope()
    status: EmailStatus | None = Field(None, description="Only emails in this status.")
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the last page.")
    limit: int = Field(50, ge=1, le=200)


class DecideDraftCommand(BaseModel):
    """Approve or reject one draft. An approval may carry an edit (a new subject and/or body):
    the draft is changed, its footer put back, and then approved."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["decide_draft"] = "decide_draft"
    campaign_id: uuid.UUID
    team: str | None = TeamScope()
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
    team: str | None = TeamScope()
    decision: Decision
    reviewed_by: str = Field(..., min_length=1, max_length=200)
    correlation_id: str | None = Field(None, max_length=128)


class ListRevisionsCommand(BaseModel):
    """Every saved version of one email's text: as drafted (revision 0), then each edit."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["list_revisions"] = "list_revisions"
    campaign_id: uuid.UUID
    team: str | None = TeamScope()
    email_id: uuid.UUID


class RevisionView(BaseModel):
    revision: int = Field(..., ge=0, description="0: as drafted; then one per saved edit.")
    subject: str
    body: str
    edited_by: str = Field(..., description="The reviewer; for revision 0, model or template.")
    edited_at: datetime


class RevisionList(BaseModel):
    email_id: uuid.UUID
    items: list[RevisionView] = Field(
        ..., description="Oldest first; empty for an email never edited (its text is as drafted)."
    )


class StopSequenceCommand(BaseModel):
    """Stop one recipient's follow-ups (any of their emails in the campaign names them): those
    not sent yet never will be."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["stop_sequence"] = "stop_sequence"
    campaign_id: uuid.UUID
    team: str | None = TeamScope()
    email_id: uuid.UUID
    stopped_by: str = Field(..., min_length=1, max_length=200)


class SequenceStopped(BaseModel):
    email_id: uuid.UUID
    stopped: int = Field(..., ge=0, description="Follow-ups stopped now (0: none was left).")


class EditDraftCommand(BaseModel):
    """Save an edit of one draft without deciding it: a new subject and/or body (the footer is
    put back). Only a `drafted` email can be edited."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["edit_draft"] = "edit_draft"
    campaign_id: uuid.UUID
    team: str | None = TeamScope()
    email_id: uuid.UUID
    subject: str | None = Field(None, description="The new subject.")
    body: str | None = Field(None, description="The new body, without the footer.")
    edited_by: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="Who edits (the API key's user); the email records its reviewer when decided.",
    )
    correlation_id: str | None = Field(None, max_length=128)


class CandidateProfile(BaseModel):
    """Who an email is written to: the candidate as the talent pool knows them, and why the
    campaign picked them."""

    full_name: str = Field(..., examples=["Ada Lovelace"])
    city: str | None = Field(None, examples=["Berlin"])
    country: str | None = Field(None, examples=["DE"], description="ISO 3166-1 alpha-2.")
    seniority: str | None = Field(None, examples=["senior"])
    years_experience: int | None = None
    skills: list[str] = Field(default_factory=list, examples=[["python", "django", "sql"]])
    matched_skills: list[str] = Field(
        default_factory=list,
        description="The skills the campaign asked for that the candidate has (empty when the "
        "email has no recipient row).",
    )
    headline: str | None = Field(None, examples=["Backend engineer, payments"])
    source: str = Field(..., examples=["csv-import"], description="How the row got here.")
    found_via: str | None = Field(
        None, examples=["GitHub"], description="Where we found their details (said in the email)."
    )


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
    edited: bool = Field(
        ...,
        description="A reviewer changed the draft: saved an edit, or edited it on approving.",
    )
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    created_at: datetime
    candidate: CandidateProfile | None = Field(
        None, description="The recipient's profile (null only if the candidate is unknown)."
    )
    step: int = Field(
        0, ge=0, description="0 for the first email, 1, 2, ... for the follow-ups of a sequence."
    )
    follow_ups: list[FollowUpView] = Field(
        default_factory=list,
        description="A first email's follow-ups, in order (empty for a follow-up itself, and "
        "for a campaign without a sequence).",
    )


class FollowUpView(BaseModel):
    """One follow-up of a recipient's sequence: its text, where it stands and when it goes."""

    email_id: uuid.UUID
    step: int = Field(..., ge=1)
    wait_days: int = Field(..., description="Working days after the step before it.")
    subject: str
    body: str
    status: EmailStatus = Field(
        ...,
        description="drafted (with its first email), waiting (for the step before it), "
        "approved (due at `due_at`), sent, stopped (`stopped_because`), rejected (dropped by "
        "a reviewer), ...",
    )
    edited: bool = False
    due_at: datetime | None = Field(None, description="When it goes, once the step before is sent.")
    sent_at: datetime | None = None
    stopped_because: str | None = Field(None, description="Why the sequence stopped.")


class EmailPage(BaseModel):
    items: list[EmailView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class ReviewCounts(BaseModel):
    """Where the review of a campaign stands."""

    drafted: int = Field(..., ge=0, description="Still waiting for a decision.")
    approved: int = Field(..., ge=0, description="Approved (whether or not sent since).")
    rejected: int = Field(..., ge=0)
    expired: int = Field(..., ge=0)


class EmailDecisionView(EmailView):
    """One email after a decision about it, with where the campaign's review stands now."""

    counts: ReviewCounts = Field(..., description="The campaign's review counts after it.")


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


# --- The email campaign workflow: params, signals and actions ---------------------------------

EMAIL_CAMPAIGN = "email_campaign"  # the workflow type; its run id is its campaign's id


MAX_REVIEW_HOURS = 720.0  # 30 days: a review left longer than that is forgotten, not pending


MAX_MONITOR_HOURS = 2_160.0  # 90 days
MAX_FOLLOW_UPS = 3
MAX_FOLLOW_UP_WAIT_DAYS = 30


# Signals the campaign service sends a campaign's run (`workflow.signals`, run id = campaign id)
REVIEW_FINISHED = "review_finished"  # no draft is pending any more


SENDING_FINISHED = "sending_finished"  # review finished and no approved email is left to send


MONITORING_CLOSED = "monitoring_closed"  # a recruiter closed the campaign before its window ended


class EmailCampaignParams(BaseModel):
    """What an email campaign run starts with; a run started from an intent gets these from it."""

    model_config = ConfigDict(extra="forbid")

    slots: Slots = Field(..., description="Who to write to and about which job.")
    requested_by: str | None = Field(None, description="The recruiter who asked, if known.")
    team: str = Field(
        DEFAULT_TEAM,
        pattern=TEAM_PATTERN,
        description="The team the campaign belongs to: always the starting key's (set by the "
        "engine, whatever the params say).",
    )
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
    follow_up_days: list[int] = Field(
        default_factory=list,
        max_length=MAX_FOLLOW_UPS,
        description="The follow-up sequence: each follow-up's wait in working days after the "
        "step before it, e.g. [3, 5]; empty for a single email.",
        examples=[[3, 5]],
    )

    @field_validator("follow_up_days")
    @classmethod
    def _waits(cls, days: list[int]) -> list[int]:
        if any(not 1 <= wait <= MAX_FOLLOW_UP_WAIT_DAYS for wait in days):
            raise ValueError(f"each wait is 1 to {MAX_FOLLOW_UP_WAIT_DAYS} working days")
        return days


class ExtractCandidatesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID = Field(..., description="The campaign's id: the workflow run's id.")
    slots: Slots
    requested_by: str | None = None
    team: str = Field(DEFAULT_TEAM, pattern=TEAM_PATTERN)
    follow_up_days: list[int] = Field(default_factory=list, max_length=MAX_FOLLOW_UPS)


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


# --- Events -----------------------------------------------------------------------------------


class EmailApproved(Event):
    """Published on `email.approved` when a reviewer approves (possibly edited) an email."""

    campaign_id: uuid.UUID
    email_id: uuid.UUID
    approved_by: str
    edited: bool = False


DeliveryKind = Literal[
    "sent", "delivered", "bounced", "opened", "clicked", "replied", "unsubscribed", "complained"
]


class EmailDeliveryEvent(Event):
    """Published on `email.delivery`: what happened to a sent email."""

    campaign_id: uuid.UUID
    email_id: uuid.UUID
    kind: DeliveryKind
    detail: dict[str, Any] = Field(default_factory=dict)


class CampaignStatusAnswer(BaseModel):
    campaign: CampaignView | None = Field(None, description="The one campaign the question means.")
    waiting_for: str | None = Field(None, description="What that campaign is waiting for.")
    options: list[CampaignSummary] = Field(
        default_factory=list, description="When several match: the newest few, to pick from."
    )
    question: str | None = Field(None, description="Which one, when several match.")
    matches: int = Field(0, description="How many of the caller's campaigns match.")


# --- Searching the talent pool ----------------------------------------------------------------

MAX_SEARCH_SHOWN = 50  # matches one search shows
SEARCH_COUNT_CAP = 10_000  # matches a search counts, at most: the count stays fast on any pool


class SearchCandidatesCommand(BaseModel):
    """Count and show the candidates who match the slots, ranked as a campaign with the same
    slots ranks them. Suppressed and recently contacted candidates are shown, flagged."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["search_candidates"] = "search_candidates"
    slots: Slots = Field(default_factory=Slots, description="Who to look for (and which job).")
    limit: int = Field(
        10,
        ge=1,
        le=MAX_SEARCH_SHOWN,
        description="How many of the best matches to show; `slots.limit`, when set, wins "
        f"(capped at {MAX_SEARCH_SHOWN}).",
    )


class CandidateHit(BaseModel):
    """One candidate a search shows, with why they match and whether they can be written to."""

    candidate_id: uuid.UUID
    full_name: str = Field(..., examples=["Ada Lovelace"])
    city: str | None = Field(None, examples=["Berlin"])
    seniority: str | None = Field(None, examples=["senior"])
    years_experience: int | None = None
    skills: list[str] = Field(default_factory=list, examples=[["python", "django", "sql"]])
    matched_skills: list[str] = Field(
        default_factory=list, description="The skills asked for that the candidate has."
    )
    why: str = Field(
        ...,
        examples=["has 2 of 2 skills asked for (python, django); 9 years of experience"],
        description="Why the candidate matches, in a sentence.",
    )
    suppressed: str | None = Field(
        None,
        examples=["unsubscribed"],
        description="Why the address is never mailed (the suppression's reason), if it is not.",
    )
    contacted_at: datetime | None = Field(
        None,
        description="The latest email to the candidate within the contact window: about the "
        "search's job when it names one, else about any job.",
    )
    contacted_about: str | None = Field(
        None, examples=["Staff Backend Engineer"], description="That email's job title."
    )


class CandidateSearchAnswer(BaseModel):
    """What a search found: how many match, and the best of them."""

    total: int = Field(..., ge=0, description="Candidates who match, flagged ones included.")
    total_is_lower_bound: bool = Field(
        False, description=f"More matched than were counted ({SEARCH_COUNT_CAP:,} at most)."
    )
    available: int = Field(
        ...,
        ge=0,
        description="Of those counted, the ones neither suppressed nor recently contacted "
        "(a lower bound too when `total_is_lower_bound`).",
    )
    job: CampaignJob | None = Field(
        None, description="The open job `slots.job_title` names, when it names exactly one."
    )
    matches: list[CandidateHit] = Field(default_factory=list, description="Best first.")
    summary: str = Field(
        ...,
        examples=["12 candidates match python in Berlin (senior), 10 of them free to contact; "
                  "the top 3: Ada Lovelace, Grace Hopper (suppressed), Alan Turing."],
        description="The answer in one line, for a chat.",
    )  # fmt: skip


# --- Privacy: erasing and exporting one candidate's data (docs/privacy.md) --------------------


class EraseCandidateCommand(BaseModel):
    """Erase a candidate's personal data from every campaign table (names, addresses, emails'
    text, profile), cancel their unsent emails, and keep only a hash of the address so they are
    never contacted again. Erasing an erased candidate changes nothing."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["erase_candidate"] = "erase_candidate"
    candidate_id: uuid.UUID
    requested_by: str | None = Field(None, max_length=200, description="Who asked (for the log).")


class CandidateErased(BaseModel):
    candidate_id: uuid.UUID
    erased_at: datetime
    already_erased: bool = Field(False, description="An earlier request had erased them.")
    emails_cancelled: int = Field(0, ge=0, description="Unsent emails to them now cancelled.")
    emails_erased: int = Field(0, ge=0, description="Emails whose address and text were erased.")


class ExportCandidateCommand(BaseModel):
    """Everything the campaign service holds about one candidate (GDPR Art. 15)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["export_candidate"] = "export_candidate"
    candidate_id: uuid.UUID


class ExportedEmail(BaseModel):
    email_id: uuid.UUID
    campaign_id: uuid.UUID
    to_address: str
    subject: str
    body: str
    status: str = Field(..., examples=["sent"])
    created_at: datetime
    sent_at: datetime | None = None
    revisions: list[RevisionView] = Field(
        default_factory=list, description="Its text as drafted and after each edit, if edited."
    )


class ExportedDeliveryEvent(BaseModel):
    email_id: uuid.UUID
    kind: str = Field(..., examples=["opened"])
    detail: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class ExportedCampaign(BaseModel):
    campaign_id: uuid.UUID
    name: str
    job_title: str
    status: str
    created_at: datetime
    rank: int | None = Field(None, description="Their rank among the campaign's recipients.")
    matched_skills: list[str] = Field(default_factory=list)


class ExportedSuppression(BaseModel):
    reason: str = Field(..., examples=["unsubscribed"])
    detail: str | None = None
    created_at: datetime


class CandidateExport(BaseModel):
    """What is held about one candidate, as `GET /api/candidates/{id}/export` returns it."""

    candidate_id: uuid.UUID
    exported_at: datetime
    erased_at: datetime | None = Field(None, description="Set once their data was erased.")
    profile: dict[str, Any] = Field(
        ..., description="The candidate's row: every column, as stored."
    )
    address_erased: bool = Field(
        False, description="Their address's hash is on the erased list: never contacted again."
    )
    suppression: ExportedSuppression | None = Field(
        None, description="Why their address is never mailed, if it is on the suppression list."
    )
    campaigns: list[ExportedCampaign] = Field(default_factory=list)
    emails: list[ExportedEmail] = Field(default_factory=list)
    delivery_events: list[ExportedDeliveryEvent] = Field(default_factory=list)


class TimelinePoint(BaseModel):
    """How many of the campaign's emails had each kind of delivery event by the end of `at`'s
    hour or day (an email counts once per kind, at its first such event)."""

    at: datetime = Field(..., description="The bucket's start (UTC).")
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0


class CampaignTimeline(BaseModel):
    campaign_id: uuid.UUID
    bucket: Literal["hour", "day"]
    points: list[TimelinePoint] = Field(
        default_factory=list,
        description="From the first event's bucket to now's; empty before the first email left.",
    )
