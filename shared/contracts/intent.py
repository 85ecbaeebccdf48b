"""The intent service's public messages: the `detect_intent` command and its result, the slots a
workflow intent carries, the intents it knows, and the `intent.detected` event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.common import DEFAULT_TEAM, TEAM_PATTERN, Event

# Workflow ids are derived from intent ids, so a client can follow a workflow before it starts.
_WORKFLOW_NAMESPACE = uuid.UUID("6f1c2a43-8d8e-4c55-9a53-1f0e2b7d9c11")


def workflow_id_for_intent(intent_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_WORKFLOW_NAMESPACE, str(intent_id))


Mode = Literal["simple", "workflow"]


Seniority = Literal["junior", "mid", "senior", "staff", "principal", "lead"]


MAX_LIMIT = 10_000  # candidates one request may name (a campaign extracts fewer: a setting)


MAX_YEARS_EXPERIENCE = 60


class Slots(BaseModel):
    """Parameters a workflow intent carries. Skills are canonical lower-case names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skills: list[str] = Field(default_factory=list, examples=[["python", "postgresql"]])
    location: str | None = Field(None, examples=["Berlin"])
    seniority: Seniority | None = None
    min_years_experience: int | None = Field(None, ge=0, le=MAX_YEARS_EXPERIENCE)
    job_title: str | None = Field(None, examples=["Staff Backend Engineer"])
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT)
    country: str | None = Field(
        None,
        min_length=2,
        max_length=2,
        pattern="^[A-Z]{2}$",
        examples=["ES"],
        description="ISO 3166-1 alpha-2, upper-case: a message naming a country and no city.",
    )
    remote: bool | None = Field(
        None, description="True when the message asks for remote people, False for on-site."
    )
    exclude_skills: list[str] = Field(
        default_factory=list,
        examples=[["php"]],
        description='Skills the message rules out ("not Java"); never also in `skills`.',
    )
    follow_up_days: list[int] = Field(
        default_factory=list,
        max_length=3,
        examples=[[3, 5]],
        description='The follow-ups a campaign request asks for ("with 2 follow-ups", "follow '
        "up after 3 and 5 days\"): each one's wait in working days after the step before it.",
    )


class IntentDetected(Event):
    """Published on `intent.detected`. A workflow-mode intent with its slots starts a workflow."""

    intent_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Starts at most one workflow."
    )
    conversation_id: str | None = Field(None, max_length=128)
    message: str = Field("", max_length=20_000, description="The user's message, for the log.")
    mode: Mode
    intent: str = Field(..., min_length=1, max_length=64, examples=["email_campaign", "inference"])
    confidence: float = Field(..., ge=0, le=1)
    slots: Slots = Field(default_factory=Slots)
    needs_clarification: bool = False
    requested_by: str | None = Field(None, description="User name from the API key, if any.")
    team: str = Field(
        DEFAULT_TEAM,
        pattern=TEAM_PATTERN,
        description="The team it acts for: the run it starts, and that run's campaign, are this "
        "team's.",
    )
    source: str = Field(
        "intent-service", description="Who detected it: a service or another system."
    )

    @property
    def workflow_id(self) -> uuid.UUID:
        return workflow_id_for_intent(self.intent_id)


class DetectIntentCommand(BaseModel):
    """Ask the intent service what a recruiter's message wants."""

    type: Literal["detect_intent"] = "detect_intent"
    message: str = Field(..., min_length=1, max_length=4_000)
    conversation_id: str | None = Field(None, max_length=128)
    requested_by: str | None = None
    team: str = Field(DEFAULT_TEAM, pattern=TEAM_PATTERN)
    correlation_id: str = Field(default_factory=lambda: uuid.uuid4().hex, max_length=128)


class IntentResult(BaseModel):
    """What the intent service decided about one message."""

    intent_id: uuid.UUID
    mode: Mode
    intent: str = Field(..., examples=["email_campaign"])
    confidence: float = Field(..., ge=0, le=1)
    slots: Slots
    language: str = Field(..., examples=["en", "de", "es"])
    needs_clarification: bool
    clarification_question: str | None = None
    detected_by: Literal["classifier", "language_model"] = Field(
        "classifier", description="Who decided: the local classifier, or the language model."
    )
    workflow_id: uuid.UUID | None = Field(
        None, description="The workflow this intent starts (derived from intent_id), if any."
    )


ALL_SLOTS = tuple(Slots.model_fields)


@dataclass(frozen=True)
class IntentSpec:
    """An intent the service knows: its mode, and which slots a message of it carries (none for a
    question to the model; a search has a campaign's; a status question names a campaign)."""

    name: str
    mode: Mode
    description: str
    needs_audience: bool = False
    slot_names: tuple[str, ...] = ()

    def keep(self, slots: Slots) -> Slots:
        """`slots` with only the slots this intent carries."""
        kept = {name: getattr(slots, name) for name in self.slot_names}
        return Slots.model_validate(kept)

    def missing_slots(self, slots: Slots) -> list[str]:
        """Human-readable names of what is missing before this intent can run."""
        if self.needs_audience and not (
            slots.skills
            or slots.location
            or slots.country
            or slots.seniority
            or slots.min_years_experience
        ):
            return ["who to contact (skills, location or seniority)"]
        return []


INTENTS: dict[str, IntentSpec] = {
    "inference": IntentSpec("inference", "simple", "a question or one-shot writing task"),
    "email_campaign": IntentSpec(
        "email_campaign",
        "workflow",
        "email a set of candidates about a job",
        needs_audience=True,
        slot_names=ALL_SLOTS,
    ),
    # Answered at once from our own data: neither starts a workflow, so a search never emails.
    "candidate_search": IntentSpec(
        "candidate_search",
        "simple",
        "count and show the candidates in our talent pool that match",
        slot_names=tuple(name for name in ALL_SLOTS if name != "follow_up_days"),
    ),
    "campaign_status": IntentSpec(
        "campaign_status",
        "simple",
        "how one of the caller's campaigns is doing",
        slot_names=("skills", "location", "job_title"),
    ),
}
