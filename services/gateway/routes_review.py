"""The review API: a recruiter lists a campaign's drafts (each with its candidate's profile), edits
them, and approves (maybe with an edit) or rejects them, one by one or all at once. Needs an API
key with the `review` scope."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS
from services.gateway.services import Client, ask
from shared.contracts.campaign import (
    MAX_BODY_CHARS,
    MAX_SUBJECT_CHARS,
    BulkDecisionView,
    DecideAllCommand,
    DecideDraftCommand,
    Decision,
    EditDraftCommand,
    EmailDecisionView,
    EmailPage,
    EmailStatus,
    EmailView,
    ListEmailsCommand,
    ListRevisionsCommand,
    RevisionList,
    SequenceStopped,
    StopSequenceCommand,
)
from shared.rpc import ServiceClient

router = APIRouter(prefix="/api/campaigns", tags=["review"], responses=API_ERRORS)
Reviewer = Annotated[Principal, Depends(require("review"))]
# A body sent back as listed still carries the footer (removed again before it is stored).
MAX_EDITED_BODY_CHARS = MAX_BODY_CHARS + 2_000

_NOT_FOUND = {"description": "No such campaign, or the email belongs to another campaign"}
_CONFLICT = {
    "description": "The email is no longer a draft (approved, rejected, expired, sent...) and "
    "cannot take this decision or edit; the message names its status"
}
_INVALID = {
    "description": "A malformed id, an empty or whitespace subject or body, or a bad cursor"
}


class DraftEdit(BaseModel):
    """An edit, saved alone or with an approval: the parts given replace the draft's; the footer
    is the system's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject": "Staff Backend Engineer at Example GmbH",
                    "body": "Hi Ada,\n\nYour talk on ledgers caught our eye...\n\nBest,\nSam",
                }
            ]
        },
    )

    subject: StrictStr | None = Field(
        None, max_length=MAX_SUBJECT_CHARS, description="The new subject, one line."
    )
    body: StrictStr | None = Field(
        None,
        max_length=MAX_EDITED_BODY_CHARS,
        description="The new body. The unsubscribe footer is added by the system: leave it out "
        "or send it back unchanged; either way the email carries it once.",
    )

    @field_validator("subject", "body")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("must be one line")
        return value


@router.get(
    "/{campaign_id}/emails",
    summary="List a campaign's emails, best-ranked recipient first",
    responses={404: {"description": "No such campaign"}, 422: _INVALID},
)
async def list_emails(
    campaign_id: uuid.UUID,
    client: Client,
    principal: Reviewer,
    status: Annotated[
        EmailStatus | None, Query(description="Only this status, e.g. `drafted` for pending.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EmailPage:
    command = ListEmailsCommand(
        campaign_id=campaign_id, status=status, cursor=cursor, limit=limit,
        team=principal.team_filter,
    )  # fmt: skip
    return EmailPage.model_validate(await ask(client, "campaign", command))


@router.post(
    "/{campaign_id}/emails/{email_id}/approve",
    summary="Approve a draft, optionally edited first (again: no change)",
    description="With a body, the draft's subject and/or body are replaced, the system's footer "
    "put back, and the draft approved. Approving an approved email again changes nothing and "
    "publishes nothing; an edit of it is a 409.",
    responses={404: _NOT_FOUND, 409: _CONFLICT, 422: _INVALID},
)
async def approve_email(
    campaign_id: uuid.UUID,
    email_id: uuid.UUID,
    client: Client,
    principal: Reviewer,
    edit: Annotated[DraftEdit | None, Body()] = None,
) -> EmailDecisionView:
    return await _decide(client, principal, campaign_id, email_id, "approve", edit)


@router.post(
    "/{campaign_id}/emails/{email_id}/reject",
    summary="Reject a draft: it is never sent (again: no change)",
    responses={404: _NOT_FOUND, 409: _CONFLICT, 422: _INVALID},
)
async def reject_email(
    campaign_id: uuid.UUID, email_id: uuid.UUID, client: Client, principal: Reviewer
) -> EmailDecisionView:
    return await _decide(client, principal, campaign_id, email_id, "reject", None)


@router.post(
    "/{campaign_id}/emails/{email_id}/edit",
    summary="Save an edit of a draft without deciding it",
    description="The draft's subject and/or body are replaced and the system's footer put back, "
    "as with an edit on approving; the draft stays pending (nothing is published) and is marked "
    "`edited`. An approval later sends the saved text. Only a `drafted` email can be edited.",
    responses={404: _NOT_FOUND, 409: _CONFLICT, 422: _INVALID},
)
async def edit_email(
    campaign_id: uuid.UUID,
    email_id: uuid.UUID,
    edit: DraftEdit,
    client: Client,
    principal: Reviewer,
) -> EmailView:
    command = EditDraftCommand(
        campaign_id=campaign_id,
        email_id=email_id,
        subject=edit.subject,
        body=edit.body,
        edited_by=principal.user,
        team=principal.team_filter,
    )
    return EmailView.model_validate(await ask(client, "campaign", command))


@router.get(
    "/{campaign_id}/emails/{email_id}/revisions",
    summary="Every version of an email's text: as drafted, then each saved edit",
    description="Revision 0 is the text as the model or the template wrote it; each edit (saved "
    "alone, or on approving) adds one, with who made it and when. Empty for an email never "
    "edited.",
    responses={404: _NOT_FOUND},
)
async def list_revisions(
    campaign_id: uuid.UUID, email_id: uuid.UUID, client: Client, principal: Reviewer
) -> RevisionList:
    command = ListRevisionsCommand(
        campaign_id=campaign_id, email_id=email_id, team=principal.team_filter
    )
    return RevisionList.model_validate(await ask(client, "campaign", command))


@router.post(
    "/{campaign_id}/emails/{email_id}/stop-sequence",
    summary="Stop a recipient's follow-ups",
    description="The recipient's follow-ups not sent yet are never sent (`stopped`); any of "
    "their emails in the campaign names them. Again: nothing more is stopped (`stopped: 0`). "
    "A reply, an unsubscribe, a hard bounce or a complaint stops them by itself.",
    responses={404: _NOT_FOUND, 422: _INVALID},
)
async def stop_sequence(
    campaign_id: uuid.UUID, email_id: uuid.UUID, client: Client, principal: Reviewer
) -> SequenceStopped:
    command = StopSequenceCommand(
        campaign_id=campaign_id, email_id=email_id, stopped_by=principal.user,
        team=principal.team_filter,
    )  # fmt: skip
    return SequenceStopped.model_validate(await ask(client, "campaign", command))


@router.post(
    "/{campaign_id}/approve-all",
    summary="Approve every draft of the campaign still pending, as it is",
    responses={404: {"description": "No such campaign"}, 422: _INVALID},
)
async def approve_all(
    campaign_id: uuid.UUID, client: Client, principal: Reviewer
) -> BulkDecisionView:
    return await _decide_all(client, principal, campaign_id, "approve")


@router.post(
    "/{campaign_id}/reject-all",
    summary="Reject every draft of the campaign still pending",
    responses={404: {"description": "No such campaign"}, 422: _INVALID},
)
async def reject_all(
    campaign_id: uuid.UUID, client: Client, principal: Reviewer
) -> BulkDecisionView:
    return await _decide_all(client, principal, campaign_id, "reject")


async def _decide(
    client: ServiceClient,
    principal: Principal,
    campaign_id: uuid.UUID,
    email_id: uuid.UUID,
    decision: Decision,
    edit: DraftEdit | None,
) -> EmailDecisionView:
    command = DecideDraftCommand(
        campaign_id=campaign_id,
        email_id=email_id,
        decision=decision,
        subject=edit.subject if edit else None,
        body=edit.body if edit else None,
        reviewed_by=principal.user,
        team=principal.team_filter,
    )
    return EmailDecisionView.model_validate(await ask(client, "campaign", command))


async def _decide_all(
    client: ServiceClient, principal: Principal, campaign_id: uuid.UUID, decision: Decision
) -> BulkDecisionView:
    command = DecideAllCommand(
        campaign_id=campaign_id, decision=decision, reviewed_by=principal.user,
        team=principal.team_filter,
    )  # fmt: skip
    return BulkDecisionView.model_validate(await ask(client, "campaign", command))
