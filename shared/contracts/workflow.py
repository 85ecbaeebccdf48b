"""The workflow service's public messages: its commands (request/reply from the gateway; the
`/api/workflows` endpoints are these over HTTP) and the views it answers with, and the events
between the engine and the action owners (step requested, step completed, signals, run
changed)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.common import DEFAULT_TEAM, TEAM_PATTERN, Event, TeamScope

RunStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "cancelled", "expired"]
FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "expired"})

WORKFLOW_TYPE_PATTERN = r"^[a-z][a-z0-9_.]*$"
WorkflowTypeName = Field(
    ..., min_length=1, max_length=64, pattern=WORKFLOW_TYPE_PATTERN, examples=["email_campaign"]
)


class StartWorkflowCommand(BaseModel):
    type: Literal["start_workflow"] = "start_workflow"
    workflow_type: str = WorkflowTypeName
    params: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    requested_by: str | None = None
    team: str = Field(DEFAULT_TEAM, pattern=TEAM_PATTERN, description="The run's team.")
    correlation_id: str | None = Field(None, max_length=128)


class GetWorkflowCommand(BaseModel):
    type: Literal["get_workflow"] = "get_workflow"
    team: str | None = TeamScope()
    run_id: uuid.UUID


class ListWorkflowsCommand(BaseModel):
    type: Literal["list_workflows"] = "list_workflows"
    team: str | None = TeamScope()
    workflow_type: str | None = Field(None, max_length=64)
    status: RunStatus | None = None
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(20, ge=1, le=100)


class CancelWorkflowCommand(BaseModel):
    type: Literal["cancel_workflow"] = "cancel_workflow"
    team: str | None = TeamScope()
    run_id: uuid.UUID
    requested_by: str | None = None


class RetryWorkflowCommand(BaseModel):
    type: Literal["retry_workflow"] = "retry_workflow"
    team: str | None = TeamScope()
    run_id: uuid.UUID
    requested_by: str | None = None


class ProvideInputCommand(BaseModel):
    """Answer the question a run waits on; the step that asked runs again."""

    type: Literal["provide_input"] = "provide_input"
    team: str | None = TeamScope()
    run_id: uuid.UUID
    answer: str = Field(..., min_length=1, max_length=1_000)
    requested_by: str | None = None


class StepView(BaseModel):
    """One attempt of one state's action."""

    model_config = ConfigDict(frozen=True)

    step_id: int
    state: str
    visit: int = Field(..., description="Which entry into the state this attempt belongs to.")
    action: str = Field(..., examples=["campaign.extract_candidates"])
    attempt: int
    status: Literal["requested", "succeeded", "failed", "timed_out", "abandoned"]
    requested_at: datetime
    completed_at: datetime | None
    deadline_at: datetime | None
    duration_ms: float | None = Field(None, description="From request to completion.")
    output: dict[str, Any] | None = None
    error: str | None = None


class RunView(BaseModel):
    """A run as listed: where it is and how it started."""

    run_id: uuid.UUID
    workflow_type: str
    definition_version: int
    status: RunStatus
    state: str | None = Field(None, description="The state it is in (or finished in).")
    sequence: int = Field(..., description="Grows with every change; matches the event stream.")
    error: str | None = None
    created_by: str | None = None
    team: str = Field(DEFAULT_TEAM, description="The team the run belongs to.")
    intent_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class QuestionView(BaseModel):
    """The question a run waits on: answer it with POST /api/workflows/{id}/input, or as the
    next message of the conversation that started the run."""

    text: str
    field: str = Field(..., description="The param the answer sets.", examples=["slots.job_title"])
    choices: list[dict[str, str]] = Field(default_factory=list, description="{label, value}.")
    state: str = Field(..., description="The state whose step asked; it runs again on an answer.")
    asked_at: datetime


class WaitView(BaseModel):
    signal: str
    deadline_at: datetime | None


class RunDetail(RunView):
    """A run with everything needed to follow it: params, the step in flight, the open wait,
    and the whole step history with attempts, timings and errors."""

    params: dict[str, Any]
    outputs: dict[str, Any] = Field(default_factory=dict, description="Last output per state.")
    current_step: StepView | None = None
    waiting_for: WaitView | None = None
    question: QuestionView | None = Field(
        None, description="While the run waits for a person's answer."
    )
    next_timer_at: datetime | None = Field(
        None, description="When the engine looks again: a step deadline, retry or wait deadline."
    )
    steps: list[StepView] = Field(default_factory=list)


class RunPage(BaseModel):
    items: list[RunView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class StartedView(BaseModel):
    run_id: uuid.UUID
    created: bool = Field(..., description="False when the idempotency key named an earlier run.")
    run: RunDetail


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

    def pick(self, answer: str) -> str | None:
        """The value of the choice `answer` names (by its number, label or value), if any."""
        text = " ".join(answer.split())
        if text.isdigit() and 1 <= int(text) <= len(self.choices):
            return self.choices[int(text) - 1].value
        for choice in self.choices:
            if text.casefold() in (choice.label.casefold(), choice.value.casefold()):
                return choice.value
        return None


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


class RunQuestion(Event):
    """Published on `workflow.questions` when a run starts waiting on a question (`question`
    set: its text, field, choices, state, asked_at) and when it stops (`question` None: answered,
    expired or cancelled). The intent service keeps them by conversation, so that the
    conversation's next message can answer."""

    run_id: uuid.UUID
    intent_id: uuid.UUID | None = Field(None, description="The intent that started the run.")
    question: dict[str, Any] | None = None
