"""Handlers of the workflow service's events and commands, given the engine and pool."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg

from services.workflow import repository, views
from services.workflow.domain.definitions import DefinitionRegistry, UnknownWorkflowType
from services.workflow.domain.starting import decide_start, params_from_intent
from services.workflow.engine import Engine, StartRequest, WorkflowError
from shared.events import IntentDetected, Reply, ReplyError
from shared.workflow_api import (
    CancelWorkflowCommand,
    GetWorkflowCommand,
    ListWorkflowsCommand,
    RetryWorkflowCommand,
    RunDetail,
    RunPage,
    StartedView,
    StartWorkflowCommand,
)

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
    """The request/reply commands behind `/api/workflows`."""

    engine: Engine
    pool: asyncpg.Pool

    async def start(self, command: StartWorkflowCommand) -> Reply:
        try:
            started = await self.engine.start(
                StartRequest(
                    workflow_type=command.workflow_type,
                    params=command.params,
                    idempotency_key=command.idempotency_key,
                    created_by=command.requested_by,
                    correlation_id=command.correlation_id,
                )
            )
        except UnknownWorkflowType as exc:
            return _refused("unknown_workflow_type", str(exc))
        except WorkflowError as exc:
            return _refused(exc.code, str(exc))
        detail = await self._detail(started.run_id)
        if detail is None:  # pragma: no cover - the run was just created or found
            return _refused("not_found", f"no workflow run {started.run_id}")
        view = StartedView(run_id=started.run_id, created=started.created, run=detail)
        return Reply(ok=True, data=view.model_dump(mode="json"))

    async def get(self, command: GetWorkflowCommand) -> Reply:
        detail = await self._detail(command.run_id)
        if detail is None:
            return _refused("not_found", f"no workflow run {command.run_id}")
        return Reply(ok=True, data=detail.model_dump(mode="json"))

    async def list(self, command: ListWorkflowsCommand) -> Reply:
        try:
            after = views.decode_cursor(command.cursor) if command.cursor else None
        except views.BadCursor as exc:
            return _refused("invalid_input", str(exc))
        async with self.pool.acquire() as conn:
            stored = await repository.list_runs(
                conn,
                workflow_type=command.workflow_type,
                status=command.status,
                after=after,
                limit=command.limit + 1,  # one more tells whether there is a next page
            )
        items = [views.run_view(s) for s in stored[: command.limit]]
        more = len(stored) > command.limit
        page = RunPage(items=items, next_cursor=views.encode_cursor(items[-1]) if more else None)
        return Reply(ok=True, data=page.model_dump(mode="json"))

    async def cancel(self, command: CancelWorkflowCommand) -> Reply:
        try:
            await self.engine.cancel(command.run_id, command.requested_by)
        except WorkflowError as exc:
            return _refused(exc.code, str(exc))
        return await self.get(GetWorkflowCommand(run_id=command.run_id))

    async def retry(self, command: RetryWorkflowCommand) -> Reply:
        try:
            await self.engine.retry(command.run_id)
        except WorkflowError as exc:
            return _refused(exc.code, str(exc))
        return await self.get(GetWorkflowCommand(run_id=command.run_id))

    async def _detail(self, run_id: uuid.UUID) -> RunDetail | None:
        async with self.pool.acquire() as conn:
            return await views.run_detail(conn, run_id)


def _refused(code: str, message: str) -> Reply:
    return Reply(ok=False, error=ReplyError(code=code, message=message))
