"""Runs as the API shows them (`shared.workflow_api`), built from the stored rows."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.workflow import repository
from services.workflow.repository import StoredRun
from shared import cursors
from shared.contracts.workflow import QuestionView, RunDetail, RunView, StepView, WaitView
from shared.db import Connection


def run_view(stored: StoredRun) -> RunView:
    return RunView(**_run_fields(stored))


def _run_fields(stored: StoredRun) -> dict[str, Any]:
    r = stored.record
    return {
        "run_id": r["run_id"],
        "workflow_type": r["workflow_type"],
        "definition_version": r["definition_version"],
        "status": r["status"],
        "state": r["current_state"],
        "sequence": r["version"],
        "error": r["error"],
        "created_by": r["created_by"],
        "team": r["team"],
        "intent_id": r["intent_id"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "finished_at": r["finished_at"],
    }


def step_view(record: asyncpg.Record) -> StepView:
    completed = record["completed_at"]
    duration = (completed - record["requested_at"]).total_seconds() * 1000 if completed else None
    return StepView(
        step_id=record["id"],
        state=record["state"],
        visit=record["visit"],
        action=record["action"],
        attempt=record["attempt"],
        status=record["status"],
        requested_at=record["requested_at"],
        completed_at=completed,
        deadline_at=record["deadline_at"],
        duration_ms=None if duration is None else round(duration, 3),
        output=None if record["output"] is None else json.loads(record["output"]),
        error=record["error"],
    )


async def run_detail(conn: Connection, run_id: uuid.UUID) -> RunDetail | None:
    stored = await repository.get_run(conn, run_id)
    if stored is None:
        return None
    steps = [step_view(r) for r in await repository.steps_of(conn, run_id)]
    current = next((s for s in steps if s.step_id == stored.current_step_id), None)
    wait = await conn.fetchrow(
        "SELECT name, deadline_at FROM workflow.waits WHERE run_id = $1 AND status = 'waiting'",
        run_id,
    )
    return RunDetail(
        **_run_fields(stored),
        params=stored.run.params,
        outputs=stored.run.context.outputs,
        current_step=current,
        waiting_for=None
        if wait is None
        else WaitView(signal=wait["name"], deadline_at=wait["deadline_at"]),
        question=_question(stored.run.context.question),
        next_timer_at=stored.wake_at,
        steps=steps,
    )


def _question(asked: dict[str, Any] | None) -> QuestionView | None:
    if asked is None:
        return None
    return QuestionView(
        text=asked["text"],
        field=asked["field"],
        choices=asked.get("choices") or [],
        state=asked["state"],
        asked_at=datetime.fromisoformat(asked["asked_at"]),
    )


def encode_cursor(view: RunView) -> str:
    return cursors.encode(view.created_at, view.run_id)
