"""What the campaign service does when an email campaign's run changes (`workflow.run.changed`):
it records the run's review deadline on the campaign, and when the run is cancelled, by whatever
system, it cancels the campaign, so that no email leaves for a run that is over. (The gateway's
cancel steers the campaign first, so that it holds by the time the API answers; this is the path
for every other canceller, and a second cancel changes nothing.)"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from services.campaign.domain.steering import cancelled_run
from services.campaign.handlers.review import store_review_deadlines
from services.campaign.handlers.steering import Wake, steer_campaign
from shared.consuming import Route
from shared.contracts.campaign import SteerCampaignCommand
from shared.contracts.workflow import WorkflowRunChanged
from shared.errors import Refused
from shared.topics import WORKFLOW_RUN_CHANGED

log = logging.getLogger("campaign.runs")


def run_change_routes(pool: Callable[[], asyncpg.Pool], wake: Wake) -> dict[str, Route[Any]]:
    """The consumer route of `workflow.run.changed`; `pool` gives the pool once the service
    started."""

    async def handle(events: list[WorkflowRunChanged]) -> None:
        await store_review_deadlines(pool(), events)
        for event in events:
            cancelled = cancelled_run(event)
            if cancelled is None:
                continue
            campaign_id, by = cancelled
            command = SteerCampaignCommand(
                campaign_id=campaign_id, action="cancel", requested_by=by or "its workflow run"
            )
            try:
                result = await steer_campaign(pool(), command, wake)
            except Refused as refused:  # no campaign yet (cancelled before extraction), or over
                log.debug("run %s cancelled: campaign not cancelled: %s", campaign_id, refused)
                continue
            if result.changed:
                log.info("campaign %s cancelled with its run (by %s)", campaign_id, by)

    async def handle_one(event: WorkflowRunChanged) -> None:
        await handle([event])

    route = Route(WorkflowRunChanged, handle_one, key=lambda e: e.run_id, handle_many=handle)
    return {WORKFLOW_RUN_CHANGED.name: route}
