"""Recording a decision or change in the audit trail: `record` builds the `AuditRecorded` event
(with the current span's trace id) and adds it to the caller's outbox in the caller's transaction,
so the entry commits or rolls back with the change itself. The gateway stores what arrives on
`audit.recorded` (`services/gateway/audit.py`)."""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry import trace

from shared import outbox
from shared.contracts.audit import AuditAction, AuditObject, AuditRecorded
from shared.contracts.common import Event
from shared.db import Connection
from shared.topics import AUDIT_RECORDED


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def entry(
    action: AuditAction,
    object_type: AuditObject,
    object_id: object,
    *,
    actor: str | None = None,
    campaign_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    team: str | None = None,
    detail: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> AuditRecorded:
    """The audit event for one change, its trace id taken from the current span."""
    return AuditRecorded(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        campaign_id=campaign_id,
        run_id=run_id,
        team=team,
        detail=detail or {},
        trace_id=current_trace_id(),
        **({"correlation_id": correlation_id} if correlation_id else {}),
    )


def outbox_event(recorded: AuditRecorded) -> tuple[str, str, Event]:
    """(topic, key, event) for an outbox: `audit.recorded`, keyed by the object's id."""
    return AUDIT_RECORDED.name, recorded.object_id, recorded


async def record(
    conn: Connection,
    schema: str,
    action: AuditAction,
    object_type: AuditObject,
    object_id: object,
    **fields: Any,
) -> AuditRecorded:
    """Add the audit event for one change to `schema`'s outbox inside the caller's transaction
    (`fields` as `entry` takes them); returns it."""
    recorded = entry(action, object_type, object_id, **fields)
    await outbox.enqueue(conn, schema, *outbox_event(recorded))
    return recorded
