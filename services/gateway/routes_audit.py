"""`GET /api/audit`: the audit log for the admin, newest first, with filters and a cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.gateway import audit
from services.gateway.api_keys import Principal
from services.gateway.audit import AuditEntry, AuditFilters
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS
from shared.contracts.audit import AuditAction
from shared.errors import Refused

router = APIRouter(prefix="/api/audit", tags=["audit"], responses=API_ERRORS)
Admin = Annotated[Principal, Depends(require("admin"))]
OBJECT_ID = "The object's id; a campaign's or a run's id also finds the entries about its emails"


class AuditPage(BaseModel):
    items: list[AuditEntry] = Field(..., description="Newest first.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


@router.get(
    "",
    summary="The audit log: every decision and change, who made it, when, and its trace",
    description="Newest first. Entries from the services arrive through Kafka: one appears "
    "within moments of its change, not necessarily before the change's answer.",
)
async def list_audit(
    request: Request,
    _: Admin,
    action: AuditAction | None = None,
    actor: Annotated[str | None, Query(max_length=200, description="The user who asked")] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=200, description=OBJECT_ID)] = None,
    since: Annotated[datetime | None, Query(description="At or after this time")] = None,
    until: Annotated[datetime | None, Query(description="Before this time")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LIMIT)] = 50,
) -> AuditPage:
    filters = AuditFilters(
        action=action, actor=actor, team=team, object_id=object_id,
        since=_aware(since), until=_aware(until),
    )  # fmt: skip
    try:
        items, next_cursor = await audit.list_entries(
            request.app.state.pool, filters, cursor=cursor, limit=limit
        )
    except Refused as exc:  # a cursor this API did not hand out
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    return AuditPage(items=items, next_cursor=next_cursor)


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
