"""The workflow API: start, list, inspect, cancel and retry runs, and follow one as it runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS
from services.gateway.routes_campaigns import stop_campaign
from services.gateway.run_events import RunEventHub
from services.gateway.services import Client, ask
from services.gateway.sse import KEEP_ALIVE, held_stream, open_slot, sse_event
from shared.contracts.campaign import EMAIL_CAMPAIGN
from shared.contracts.workflow import (
    FINISHED_STATUSES,
    WORKFLOW_TYPE_PATTERN,
    CancelWorkflowCommand,
    GetWorkflowCommand,
    ListWorkflowsCommand,
    ProvideInputCommand,
    RetryWorkflowCommand,
    RunDetail,
    RunPage,
    RunStatus,
    StartedView,
    StartWorkflowCommand,
)
from shared.rpc import ServiceClient

RUN_START_WAIT_SECONDS = 3.0
router = APIRouter(prefix="/api/workflows", tags=["workflows"], responses=API_ERRORS)
KEEP_ALIVE_SECONDS = 15.0
Reader = Annotated[Principal, Depends(require("workflows"))]


class StartWorkflow(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "email_campaign",
                    "params": {"slots": {"skills": ["python"], "location": "Berlin"}},
                    "idempotency_key": "ats-req-1234",
                }
            ]
        },
    )

    type: StrictStr = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=WORKFLOW_TYPE_PATTERN,
        description="The workflow type: lower-case letters, digits, '_' and '.'.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Checked against the workflow's schema."
    )
    idempotency_key: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The same key returns the same run instead of starting another.",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a workflow run",
    responses={
        200: {"description": "The idempotency key named an existing run; nothing was started"},
        409: {"description": "The idempotency key was used for a different request"},
        422: {"description": "Unknown workflow type, or params that fail its schema"},
    },
)
async def start_workflow(
    body: StartWorkflow,
    client: Client,
    response: Response,
    principal: Reader,
    idempotency_header: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> StartedView:
    key = body.idempotency_key or idempotency_header
    if body.idempotency_key and idempotency_header and body.idempotency_key != idempotency_header:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="the Idempotency-Key header and the body's idempotency_key differ",
        )
    command = StartWorkflowCommand(
        workflow_type=body.type, params=body.params, idempotency_key=key,
        requested_by=principal.user, team=principal.team,
    )  # fmt: skip
    started = StartedView.model_validate(await ask(client, "workflow", command))
    if not started.created:
        response.status_code = status.HTTP_200_OK
    return started


@router.get("", summary="List workflow runs, newest first")
async def list_workflows(
    client: Client,
    principal: Reader,
    type: Annotated[
        str | None, Query(max_length=64, description="Only this workflow type.")
    ] = None,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunPage:
    command = ListWorkflowsCommand(
        workflow_type=type, status=status_, cursor=cursor, limit=limit,
        team=principal.team_filter,
    )  # fmt: skip
    return RunPage.model_validate(await ask(client, "workflow", command))


@router.get(
    "/{run_id}",
    summary="A run: state, current step and full step history",
    responses={404: {"description": "No such run"}},
)
async def get_workflow(run_id: uuid.UUID, client: Client, principal: Reader) -> RunDetail:
    return await _detail(client, run_id, principal.team_filter)


@router.post(
    "/{run_id}/cancel",
    summary="Cancel a run (again: no change)",
    responses={
        404: {"description": "No such run"},
        409: {"description": "The run has already finished otherwise"},
    },
)
async def cancel_workflow(run_id: uuid.UUID, client: Client, principal: Reader) -> RunDetail:
    run = await _detail(client, run_id, principal.team_filter)
    if run.workflow_type == EMAIL_CAMPAIGN and run.status not in FINISHED_STATUSES:
        # The campaign first: once it has answered, no further email leaves.
        await stop_campaign(client, run_id, principal)
    command = CancelWorkflowCommand(
        run_id=run_id, requested_by=principal.user, team=principal.team_filter
    )
    return RunDetail.model_validate(await ask(client, "workflow", command))


class RunInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"answer": "2"}, {"answer": "Data Engineer"}]},
    )

    answer: StrictStr = Field(
        ...,
        min_length=1,
        max_length=1_000,
        description="The answer to the run's question: a choice by its number, label or value, "
        "or free text.",
    )


@router.post(
    "/{run_id}/input",
    summary="Answer the question a run waits on; the step that asked runs again",
    responses={
        404: {"description": "No such run"},
        409: {"description": "The run waits on no question"},
        422: {"description": "The answer cannot answer the question (the message says why)"},
    },
)
async def provide_input(
    run_id: uuid.UUID, body: RunInput, client: Client, principal: Reader
) -> RunDetail:
    command = ProvideInputCommand(
        run_id=run_id, answer=body.answer, requested_by=principal.user,
        team=principal.team_filter,
    )  # fmt: skip
    return RunDetail.model_validate(await ask(client, "workflow", command))


@router.post(
    "/{run_id}/retry",
    summary="Retry a failed run from its failed step (an active run: no change)",
    responses={
        404: {"description": "No such run"},
        409: {"description": "The run succeeded, was cancelled or expired"},
    },
)
async def retry_workflow(run_id: uuid.UUID, client: Client, principal: Reader) -> RunDetail:
    command = RetryWorkflowCommand(
        run_id=run_id, requested_by=principal.user, team=principal.team_filter
    )
    return RunDetail.model_validate(await ask(client, "workflow", command))


@router.get(
    "/{run_id}/events",
    summary="Follow a run: Server-Sent Events of its changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": (
        "First a `snapshot` event (the run, as GET /api/workflows/{id} returns it), then a "
        "`change` event per change (a WorkflowRunChanged; `id` is its sequence). The stream "
        "ends after the run finishes. A run that does not exist yet (an intent's `workflow_id` "
        "followed at once) is waited for up to 3 s before the 404."
    )}},
)  # fmt: skip
async def follow_workflow(
    run_id: uuid.UUID, request: Request, client: Client, principal: Reader
) -> StreamingResponse:
    hub: RunEventHub = request.app.state.run_events
    queue = hub.listen(run_id)  # before the snapshot, so no change falls between the two
    try:
        snapshot = await _started_run(client, run_id, principal.team_filter)
        slot = await open_slot(request, principal)  # 429 over MAX_STREAMS_PER_KEY
    except BaseException:
        hub.stop_listening(run_id, queue)
        raise

    async def events() -> AsyncIterator[str]:
        try:
            yield sse_event("snapshot", snapshot.model_dump(mode="json"), snapshot.sequence)
            last, finished = snapshot.sequence, snapshot.status in FINISHED_STATUSES
            while not finished:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield KEEP_ALIVE
                    continue
                if change is None:
                    return  # this stream fell behind and was cut off
                if change.sequence <= last:
                    continue  # already in the snapshot
                last, finished = change.sequence, change.status in FINISHED_STATUSES
                yield sse_event("change", change.model_dump(mode="json"), change.sequence)
        finally:
            hub.stop_listening(run_id, queue)

    return held_stream(events(), slot)


async def _started_run(client: ServiceClient, run_id: uuid.UUID, team: str | None) -> RunDetail:
    """The run, waiting up to RUN_START_WAIT_SECONDS for one that does not exist yet: a run
    announced by an intent (`workflow_id`) starts a moment later, and browsers never retry an
    event stream that answered 404."""
    deadline = time.monotonic() + RUN_START_WAIT_SECONDS
    while True:
        try:
            return await _detail(client, run_id, team)
        except HTTPException as exc:
            if exc.status_code != status.HTTP_404_NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def _detail(client: ServiceClient, run_id: uuid.UUID, team: str | None) -> RunDetail:
    """The run, if it is `team`'s (any team's for None); another team's is a 404."""
    command = GetWorkflowCommand(run_id=run_id, team=team)
    return RunDetail.model_validate(await ask(client, "workflow", command))
