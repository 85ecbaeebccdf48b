"""A campaign's progress: its status and counts, once or as a stream of Server-Sent Events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.services import Client, ask
from services.gateway.sse import HEADERS, KEEP_ALIVE, sse_event
from shared.campaign_monitoring import CampaignView, GetCampaignCommand
from shared.rpc import ServiceClient, ServiceTimeout

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])
POLL_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 15.0
# Recruiters who run workflows and reviewers both follow campaigns.
Reader = Annotated[Principal, Depends(require("workflows", "review"))]


@router.get(
    "/{campaign_id}",
    summary="A campaign: status, job and counts of its emails and delivery events",
    responses={404: {"description": "No such campaign"}},
)
async def get_campaign(campaign_id: uuid.UUID, client: Client, _: Reader) -> CampaignView:
    return await _view(client, campaign_id)


@router.get(
    "/{campaign_id}/events",
    summary="Follow a campaign: Server-Sent Events of its counts",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A `counts` event (the campaign, as GET /api/campaigns/{id} returns "
            "it) at once and whenever the status or a count changes, checked every second; "
            "keep-alive comments while nothing changes. The stream ends after the campaign "
            "is completed, expired, failed or cancelled.",
        },
        404: {"description": "No such campaign"},
    },
)
async def follow_campaign(campaign_id: uuid.UUID, client: Client, _: Reader) -> StreamingResponse:
    first = await _view(client, campaign_id)  # a 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        view, sequence = first, 1
        last = _progress(view)
        yield sse_event("counts", view.model_dump(mode="json"), sequence)
        quiet_since = time.monotonic()
        while not view.finished:
            await asyncio.sleep(POLL_SECONDS)
            try:
                view = await _view(client, campaign_id)
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

    return StreamingResponse(events(), media_type="text/event-stream", headers=HEADERS)


def _progress(view: CampaignView) -> tuple[str, dict[str, Any]]:
    return view.status, view.counts.model_dump()


async def _view(client: ServiceClient, campaign_id: uuid.UUID) -> CampaignView:
    command = GetCampaignCommand(campaign_id=campaign_id)
    return CampaignView.model_validate(await ask(client, "campaign", command))
