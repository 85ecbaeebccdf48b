"""The audit trail's event: a decision or change a person made (a draft approved, a campaign
cancelled, a run retried, a key revoked), written by the service that made it in the same
transaction as the change and stored by the gateway in `gateway.audit_log` (`GET /api/audit`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import Field

from shared.contracts.common import Event, utcnow

AuditAction = Literal[
    "email.approved",
    "email.rejected",
    "email.edited",
    "emails.approved_all",
    "emails.rejected_all",
    "sequence.stopped",
    "campaign.paused",
    "campaign.resumed",
    "campaign.cancelled",
    "campaign.closed",
    "sending.stopped",
    "sending.resumed",
    "candidate.erased",
    "run.cancelled",
    "run.retried",
    "run.input_given",
    "key.created",
    "key.rotated",
    "key.revoked",
]
AUDIT_ACTIONS: tuple[str, ...] = get_args(AuditAction)

AuditObject = Literal["campaign", "email", "run", "key", "candidate", "sending"]


class AuditRecorded(Event):
    """Published on `audit.recorded` (keyed by `object_id`) with the change it records, through
    the writer's outbox: an entry exists exactly when its change committed."""

    audit_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="The entry's id: stored once, whatever comes twice."
    )
    at: datetime = Field(default_factory=utcnow, description="When the change was made (UTC).")
    actor: str | None = Field(
        None,
        max_length=200,
        description="The user who asked; none when not known.",
        examples=["ada"],
    )
    action: AuditAction = Field(..., examples=["email.edited"])
    object_type: AuditObject = Field(..., examples=["email"])
    object_id: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="The changed object's id ('all' for the emergency stop).",
        examples=["0b6e3f1c-6a51-4a4e-9f3b-2f8d0c2b7e11"],
    )
    campaign_id: uuid.UUID | None = Field(None, description="The campaign it belongs to, if any.")
    run_id: uuid.UUID | None = Field(None, description="The workflow run it belongs to, if any.")
    team: str | None = Field(
        None, max_length=64, description="The team that owns the object, when known."
    )
    detail: dict[str, Any] = Field(
        default_factory=dict,
        description="What changed: an edit's `before` and `after`, a bulk decision's `decided`, "
        "an answer's text, ...",
        examples=[{"before": {"subject": "Hi"}, "after": {"subject": "Hello"}}],
    )
    trace_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="The OpenTelemetry trace of the request that made the change (32 hex digits).",
    )
