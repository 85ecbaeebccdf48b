"""Campaigns: the list, one campaign's status and counts (once or as a stream of Server-Sent
Events), and steering it (pause, resume, cancel, close), plus the admin's emergency stop of all
sending."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS
from services.gateway.services import Client, ask
from services.gateway.sse import KEEP_ALIVE, held_stream, open_slot, sse_event
from shared.contracts.campaign import (
    CampaignPage,
    CampaignStatus,
    CampaignTimeline,
    CampaignTimelineCommand,
    CampaignView,
    GetCampaignCommand,
    ListCampaignsCommand,
    SendingStop,
    SteerCampaignCommand,
    SteeringAction,
    SteeringResult,
    StopAllSendingCommand,
)
from shared.contracts.workflow import CancelWorkflowCommand
from shared.rpc import ServiceClient, ServiceTimeout

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"], responses=API_ERRORS)
sending = APIRouter(prefix="/api/sending", tags=["campaigns"], responses=API_ERRORS)
POLL_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 15.0
# Recruiters who run workflows and reviewers both follow campaigns.
Reader = Annotated[Principal, Depends(require("workflows", "review"))]
# Steering a campaign is the recruiter's who runs it; the emergency stop is the admin's.
Steerer = Annotated[Principal, Depends(require("workflows"))]
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("", summary="List campaigns, newest first, with filters and a cursor")
async def list_campaigns(
    client: Client,
    principal: Reader,
    status: CampaignStatus | None = None,
    created_by: Annotated[str | None, Query(max_length=200)] = None,
    job_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CampaignPage:
    command = ListCampaignsCommand(
        status=status, created_by=created_by, job_id=job_id, created_after=created_after,
        created_before=created_before, cursor=cursor, limit=limit, team=principal.team_filter,
    )  # fmt: skip
    return CampaignPage.model_validate(await ask(client, "campaign", command))


@router.get(
    "/{campaign_id}",
    summary="A campaign: status, job and counts of its emails and delivery events",
    description="With `review_deadline_at`: when its drafts still pending expire (known once "
    "its run waits for the review).",
    responses={404: {"description": "No such campaign"}},
)
async def get_campaign(campaign_id: uuid.UUID, client: Client, principal: Reader) -> CampaignView:
    return await _view(client, campaign_id, principal.team_filter)


@router.get(
    "/{campaign_id}/timeline",
    summary="A campaign's funnel over time: emails sent, opened, replied, ... by hour or day",
    responses={404: {"description": "No such campaign"}},
)
async def campaign_timeline(
    campaign_id: uuid.UUID,
    client: Client,
    principal: Reader,
    bucket: Annotated[Literal["hour", "day"] | None, Query()] = None,
) -> CampaignTimeline:
    command = CampaignTimelineCommand(
        campaign_id=campaign_id, bucket=bucket, team=principal.team_filter
    )
    return CampaignTimeline.model_validate(await ask(client, "campaign", command))


@router.get(
    "/{campaign_id}/events",
    summary="Follow a campaign: Server-Sent Events of its counts",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A `counts` event (the campaign, as GET /api/campaigns/{id} returns "
            "it) at once and whenever the status, the pause, the review deadline or a count "
            "changes, checked every second; keep-alive comments while nothing changes. When "
            "the campaign is completed, "
            "expired, failed or cancelled, a last `end` event ({campaign_id, status}) closes "
            "the stream.",
        },
        404: {"description": "No such campaign"},
    },
)
async def follow_campaign(
    campaign_id: uuid.UUID, request: Request, client: Client, principal: Reader
) -> StreamingResponse:
    team = principal.team_filter
    first = await _view(client, campaign_id, team)  # a 404 before the stream starts
    slot = await open_slot(request, principal)  # 429 over MAX_STREAMS_PER_KEY

    async def events() -> AsyncIterator[str]:
        view, sequence = first, 1
        last = _progress(view)
        yield sse_event("counts", view.model_dump(mode="json"), sequence)
        quiet_since = time.monotonic()
        while not view.finished:
            await asyncio.sleep(POLL_SECONDS)
            try:
                view = await _view(client, campaign_id, team)
            except ServiceTimeout:
                continue  # the campaign service is busy or restarting: ask again next time
            except HTTPException:
                return  # the campaign is gone
            progress = _progress(view)
            if progress != last:
                last, sequence = progress, sequence + 1
                yield sse_event("counts", view.model_dump(mode="json"), sequence)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
                yield KEEP_ALIVE
                quiet_since = time.monotonic()
        yield sse_event(
            "end", {"campaign_id": str(campaign_id), "status": view.status}, sequence + 1
        )

    return held_stream(events(), slot)


def _progress(view: CampaignView) -> tuple[str, bool, datetime | None, dict[str, Any]]:
    return view.status, view.paused, view.review_deadline_at, view.counts.model_dump()


async def _view(client: ServiceClient, campaign_id: uuid.UUID, team: str | None) -> CampaignView:
    command = GetCampaignCommand(campaign_id=campaign_id, team=team)
    return CampaignView.model_validate(await ask(client, "campaign", command))


_STEERING_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such campaign"},
    409: {"description": "Not possible in the campaign's status (the message says why)"},
}


_STEERING: dict[SteeringAction, str] = {
    "pause": "Pause a campaign's sending (again: no change); review goes on",
    "resume": "Resume a paused campaign's sending (not paused: no change)",
    "cancel": "Cancel a campaign and its run: nothing more is sent (again: no change)",
    "close": "Close a campaign that has sent everything, before its monitoring window ends",
}


def _steering_route(action: SteeringAction) -> Callable[..., Awaitable[SteeringResult]]:
    async def steer(campaign_id: uuid.UUID, client: Client, principal: Steerer) -> SteeringResult:
        return await steer_campaign(client, campaign_id, action, principal)

    steer.__name__ = f"{action}_campaign"  # the OpenAPI operation id
    return steer


for _action, _summary in _STEERING.items():
    router.add_api_route(
        f"/{{campaign_id}}/{_action}",
        _steering_route(_action),
        methods=["POST"],
        summary=_summary,
        responses=_STEERING_ERRORS,
    )


@sending.post("/stop", summary="Emergency stop: pause the sending of every campaign (admin)")
async def stop_all_sending(client: Client, principal: Admin) -> SendingStop:
    command = StopAllSendingCommand(requested_by=principal.user)
    return SendingStop.model_validate(await ask(client, "campaign", command))


@sending.post("/resume", summary="Resume the campaigns the emergency stop paused (admin)")
async def resume_all_sending(client: Client, principal: Admin) -> SendingStop:
    command = StopAllSendingCommand(resume=True, requested_by=principal.user)
    return SendingStop.model_validate(await ask(client, "campaign", command))


async def steer_campaign(
    client: ServiceClient, campaign_id: uuid.UUID, action: SteeringAction, by: Principal
) -> SteeringResult:
    """Steer the campaign; a cancel then cancels its workflow run too. The campaign goes first:
    once it has answered, no further email leaves."""
    command = SteerCampaignCommand(
        campaign_id=campaign_id, action=action, requested_by=by.user, team=by.team_filter
    )
    result = SteeringResult.model_validate(await ask(client, "campaign", command))
    if action == "cancel":
        await _cancel_run(client, campaign_id, by)
    return result


async def stop_campaign(client: ServiceClient, campaign_id: uuid.UUID, by: Principal) -> None:
    """Before a campaign's run is cancelled through the workflow API: cancel the campaign, or
    close it if it has sent everything; one not created yet, or ended already, is left as it is."""
    for action in ("cancel", "close"):
        command = SteerCampaignCommand(
            campaign_id=campaign_id, action=action, requested_by=by.user, team=by.team_filter
        )
        try:
            await ask(client, "campaign", command)
        except HTTPException as exc:
            if exc.status_code == 404:
                return
            if exc.status_code != 409:
                raise
        else:
            return


async def _cancel_run(client: ServiceClient, run_id: uuid.UUID, by: Principal) -> None:
    command = CancelWorkflowCommand(run_id=run_id, requested_by=by.user, team=by.team_filter)
    try:
        await ask(client, "workflow", command)
    except HTTPException as exc:
        if exc.status_code not in (404, 409):  # no run, or it has finished already
            raise
