"""Handlers of the workflow service's events and commands, given the engine and pool."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg

from services.workflow import repository, views
from services.workflow.domain.definitions import DefinitionRegistry, UnknownWorkflowType
from services.workflow.domain.starting import decide_start, params_from_intent
from services.workflow.engine import Engine, RunNotFound, StartRequest
from shared import cursors
from shared.contracts.intent import IntentDetected
from shared.contracts.workflow import (
    CancelWorkflowCommand,
    ListWorkflowsCommand,
    ProvideInputCommand,
    RetryWorkflowCommand,
    RunDetail,
    RunPage,
    StartedView,
    StartWorkflowCommand,
)
from shared.errors import Refused

log = logging.getLogger(__name__)


async def start_from_intents(
    engine: Engine, definitions: DefinitionRegistry, events: list[IntentDetected]
) -> list[uuid.UUID]:
    """Start the workflows detected intents ask for, in one transaction, once per intent id (the
    run id is derived from it, so a second copy of an event finds the run and starts nothing);
    returns the ids of the runs started."""
    requests: list[StartRequest] = []
    for event in events:
        decision = decide_start(event, definitions.types())
        if not decision.start or decision.workflow_type is None:
            log.info("intent %s starts no workflow: %s", event.intent_id, decision.reason)
            continue
        requests.append(
            StartRequest(
                workflow_type=decision.workflow_type,
                params=params_from_intent(event),
                run_id=event.workflow_id,
                intent_id=event.intent_id,
                created_by=event.requested_by or event.source,
                correlation_id=event.correlation_id,
                team=event.team,
            )
        )
    if not requests:
        return []
    started = [s.run_id for s in await engine.start_many(requests) if s.created]
    started_by = {r.run_id: r for r in requests}
    for run_id in started:
        request = started_by[run_id]
        log.info("intent %s started %s run %s", request.intent_id, request.workflow_type, run_id)
    return started


@dataclass
class WorkflowCommands:
    """The request/reply commands behind `/api/workflows`. A refusal is raised as `Refused`
    (the engine's WorkflowError is one), which the command consumer turns into the reply."""

    engine: Engine
    pool: asyncpg.Pool

    async def start(self, command: StartWorkflowCommand) -> StartedView:
        try:
            started = await self.engine.start(
                StartRequest(
                    workflow_type=command.workflow_type,
                    params=command.params,
                    idempotency_key=command.idempotency_key,
                    created_by=command.requested_by,
                    correlation_id=command.correlation_id,
                    team=command.team,
                )
            )
        except UnknownWorkflowType as exc:
            raise Refused(str(exc), code="unknown_workflow_type") from None
        return StartedView(
            run_id=started.run_id, created=started.created, run=await self.get(started.run_id)
        )

    async def get(self, run_id: uuid.UUID, team: str | None = None) -> RunDetail:
        async with self.pool.acquire() as conn:
            detail = await views.run_detail(conn, run_id)
        if detail is None or (team is not None and detail.team != team):
            raise RunNotFound(run_id)
        return detail

    async def _owned(self, run_id: uuid.UUID, team: str | None) -> None:
        """Another team's run is not found (None: an admin's request, any team's)."""
        if team is None:
            return
        async with self.pool.acquire() as conn:
            if await repository.run_team(conn, run_id) != team:
                raise RunNotFound(run_id)

    async def list(self, command: ListWorkflowsCommand) -> RunPage:
        after = cursors.decode_time(command.cursor) if command.cursor else None
        async with self.pool.acquire() as conn:
            stored = await repository.list_runs(
                conn,
                workflow_type=command.workflow_type,
                status=command.status,
                after=after,
                limit=command.limit + 1,  # one more tells whether there is a next page
                team=command.team,
            )
        items = [views.run_view(s) for s in stored[: command.limit]]
        more = len(stored) > command.limit
        return RunPage(items=items, next_cursor=views.encode_cursor(items[-1]) if more else None)

    async def cancel(self, command: CancelWorkflowCommand) -> RunDetail:
        await self._owned(command.run_id, command.team)
        await self.engine.cancel(command.run_id, command.requested_by)
        return await self.get(command.run_id)

    async def retry(self, command: RetryWorkflowCommand) -> RunDetail:
        await self._owned(command.run_id, command.team)
        await self.engine.retry(command.run_id, command.requested_by)
        return await self.get(command.run_id)

    async def provide_input(self, command: ProvideInputCommand) -> RunDetail:
        await self._owned(command.run_id, command.team)
        await self.engine.provide_input(command.run_id, command.answer, command.requested_by)
        return await self.get(command.run_id)
