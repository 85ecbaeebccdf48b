"""The workflow service's commands (request/reply from the gateway) and the views it answers with.
The gateway's `/api/workflows` endpoints are these, over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    correlation_id: str | None = Field(None, max_length=128)


class GetWorkflowCommand(BaseModel):
    type: Literal["get_workflow"] = "get_workflow"
    run_id: uuid.UUID


class ListWorkflowsCommand(BaseModel):
    type: Literal["list_workflows"] = "list_workflows"
    workflow_type: str | None = Field(None, max_length=64)
    status: RunStatus | None = None
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(20, ge=1, le=100)


class CancelWorkflowCommand(BaseModel):
    type: Literal["cancel_workflow"] = "cancel_workflow"
    run_id: uuid.UUID
    requested_by: str | None = None


class RetryWorkflowCommand(BaseModel):
    type: Literal["retry_workflow"] = "retry_workflow"
    run_id: uuid.UUID
    requested_by: str | None = None


class ProvideInputCommand(BaseModel):
    """Answer the question a run waits on; the step that asked runs again."""

    type: Literal["provide_input"] = "provide_input"
    run_id: uuid.UUID
    answer: str = Field(..., min_length=1, max_length=1_000)
    requested_by: str | None = None


WorkflowCommand = (
    StartWorkflowCommand
    | GetWorkflowCommand
    | ListWorkflowsCommand
    | CancelWorkflowCommand
    | RetryWorkflowCommand
    | ProvideInputCommand
)


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
