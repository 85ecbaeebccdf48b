"""Versioned event contracts for every topic, and the commands the gateway sends to services.

Every event carries an event id, a schema version, when it happened and a correlation id. When a
shape changes, bump `SCHEMA_VERSION` on the class and register an upcaster from the old version, so
consumers keep reading old payloads that are still on the topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.workflow_api import RunStatus

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# Workflow ids are derived from intent ids, so a client can follow a workflow before it starts.
_WORKFLOW_NAMESPACE = uuid.UUID("6f1c2a43-8d8e-4c55-9a53-1f0e2b7d9c11")


def workflow_id_for_intent(intent_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_WORKFLOW_NAMESPACE, str(intent_id))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event has. Unknown fields are ignored so producers can add fields first."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    SCHEMA_VERSION: ClassVar[int] = 1
    UPCASTERS: ClassVar[dict[int, Upcaster]] = {}

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique per event.")
    schema_version: int = Field(1, ge=1, description="Version of this event's shape.")
    occurred_at: datetime = Field(default_factory=utcnow, description="When it happened (UTC).")
    correlation_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        max_length=128,
        description="Ties together every event caused by one request.",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.UPCASTERS = dict(cls.UPCASTERS)  # each event class owns its upcasters

    @model_validator(mode="before")
    @classmethod
    def _upcast(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        version = int(data.get("schema_version", cls.SCHEMA_VERSION))
        if version > cls.SCHEMA_VERSION:
            raise ValueError(
                f"{cls.__name__} schema_version {version} is newer than this consumer understands "
                f"({cls.SCHEMA_VERSION}); deploy the newer consumer first"
            )
        while version < cls.SCHEMA_VERSION:
            upcaster = cls.UPCASTERS.get(version)
            if upcaster is None:
                raise ValueError(f"{cls.__name__} has no upcaster from schema_version {version}")
            data = {**upcaster(dict(data)), "schema_version": version + 1}
            version += 1
        return {**data, "schema_version": version}

    @classmethod
    def upcaster(cls, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns a payload of `from_version` into the next version."""

        def register(fn: Upcaster) -> Upcaster:
            cls.UPCASTERS[from_version] = fn
            return fn

        return register


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
    source: str = Field(
        "intent-service", description="Who detected it: a service or another system."
    )

    @property
    def workflow_id(self) -> uuid.UUID:
        return workflow_id_for_intent(self.intent_id)


class WorkflowStepRequested(Event):
    """Published by the workflow engine on `workflow.step.requested.<owner>` for the service that
    owns the action. A request may arrive twice; `idempotency_key` names the step visit, so the
    owner performs its effect once however many attempts or copies arrive."""

    run_id: uuid.UUID
    workflow_type: str = Field(..., examples=["email_campaign"])
    step_id: int = Field(..., description="Step history row; the completion names it back.")
    state: str = Field(..., examples=["extract_candidates"])
    visit: int = Field(1, ge=1, description="How many times the run has entered this state.")
    action: str = Field(..., examples=["campaign.extract_candidates"])
    attempt: int = Field(1, ge=1)
    input: dict[str, Any] = Field(default_factory=dict)
    deadline_at: datetime | None = Field(
        None, description="After this the engine has given up on this attempt; do not start it."
    )

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.state}:{self.visit}"


NEEDS_INPUT = "needs_input"  # a step's error code: a person must answer `question` first
INPUT_SIGNAL = "input"  # the signal that carries the answer: payload {"answer": "..."}


class Choice(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str = Field(..., max_length=300, examples=["Staff Backend Engineer (Berlin)"])
    value: str = Field(..., max_length=300, description="What the answer sets the field to.")


class Question(BaseModel):
    """What a step needs a person to say before it can go on. The answer sets the run's param
    `field` (a dotted path) and the step runs again."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(..., min_length=1, max_length=2_000)
    field: str = Field(
        ..., pattern=r"^[a-z_]+(\.[a-z_]+)*$", max_length=100, examples=["slots.job_title"]
    )
    choices: list[Choice] = Field(
        default_factory=list, max_length=20, description="Answers to pick from, if there are any."
    )


class StepError(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(..., examples=["timeout", "invalid_input", NEEDS_INPUT])
    message: str = Field(..., max_length=4_000)
    retryable: bool = Field(True, description="False: retrying cannot help; fail at once.")
    question: Question | None = Field(
        None, description="With code needs_input: the run waits for a person's answer."
    )


class WorkflowStepCompleted(Event):
    """Published by an action's owner on `workflow.step.completed`; duplicates and late copies
    (for an attempt the engine already gave up on) change nothing."""

    run_id: uuid.UUID
    step_id: int
    action: str
    attempt: int = Field(1, ge=1)
    ok: bool
    output: dict[str, Any] = Field(default_factory=dict)
    error: StepError | None = None


class WorkflowSignal(Event):
    """Published on `workflow.signals` by whoever a waiting run waits for (a reviewer's service,
    another system). Stored when it arrives, so a signal that beats the wait is not lost."""

    run_id: uuid.UUID
    name: str = Field(..., min_length=1, max_length=100, examples=["review_finished"])
    payload: dict[str, Any] = Field(default_factory=dict)
    sent_by: str | None = None


class WorkflowRunChanged(Event):
    """Published on `workflow.run.changed` after every change of a run, in order per run
    (`sequence` grows by one or more each time): progress for the API's event stream."""

    run_id: uuid.UUID
    workflow_type: str
    sequence: int = Field(..., ge=0, description="The run's version after the change.")
    status: RunStatus
    state: str | None
    change: str = Field(
        ..., examples=["step_requested", "step_succeeded", "waiting", "needs_input"]
    )
    detail: dict[str, Any] = Field(
        default_factory=dict, description="With needs_input: the question, under `question`."
    )
    error: str | None = None
    intent_id: uuid.UUID | None = Field(
        None, description="The detected intent that started the run (its conversation's turn)."
    )


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


class DeadLetter(Event):
    """Published on `events.deadletter`: a message a consumer gave up on, and why."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    consumer: str
    reason: str
    payload: str = Field(..., description="The original bytes, decoded as UTF-8 with replacement.")


# --- Commands: request/reply between the gateway and the services -----------------------------


class PingCommand(BaseModel):
    """Ask a service who it is; proves the request/reply path end to end."""

    type: Literal["ping"] = "ping"


class DetectIntentCommand(BaseModel):
    """Ask the intent service what a recruiter's message wants."""

    type: Literal["detect_intent"] = "detect_intent"
    message: str = Field(..., min_length=1, max_length=4_000)
    conversation_id: str | None = Field(None, max_length=128)
    requested_by: str | None = None
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


class ReplyError(BaseModel):
    code: str = Field(..., examples=["invalid_input", "not_found", "unavailable"])
    message: str


class Reply(BaseModel):
    """What a service answers to a command: data on success, an error with a code otherwise.
    A streaming command sends `partial` replies (chunks) before its last one."""

    ok: bool
    partial: bool = False
    data: dict[str, Any] = Field(default_factory=dict)
    error: ReplyError | None = None


class Pong(BaseModel):
    service: str
    instance_id: str
    version: str
