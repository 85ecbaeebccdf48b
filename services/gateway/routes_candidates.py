"""Candidates' privacy rights, for the admin: erase a candidate (GDPR Art. 17) and export what is
held about one (Art. 15). The campaign service does the work (`handlers/privacy.py`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from services.gateway.api_keys import Principal
from services.gateway.auth import require
from services.gateway.errors import API_ERRORS
from services.gateway.services import Client, ask
from shared.contracts.campaign import (
    CandidateExport,
    EraseCandidateCommand,
    ExportCandidateCommand,
)

router = APIRouter(prefix="/api/candidates", tags=["candidates"], responses=API_ERRORS)
# A person's data, all of it: only the admin may read or erase it.
Admin = Annotated[Principal, Depends(require("admin"))]


@router.delete(
    "/{candidate_id}",
    summary="Erase a candidate's personal data; they are never contacted again",
    description="Deletes or pseudonymises the candidate's personal data in every campaign table "
    "(profile, emails' address, subject and body, delivery events' details), cancels the emails "
    "to them not sent yet, and keeps only a hash of the address, so that no import, extraction "
    "or search brings them back. Counts and statuses stay, so campaigns' figures do not change. "
    "Erasing an erased candidate answers 204 again.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"description": "No such candidate"}},
)
async def erase_candidate(candidate_id: uuid.UUID, client: Client, principal: Admin) -> Response:
    command = EraseCandidateCommand(candidate_id=candidate_id, requested_by=principal.user)
    await ask(client, "campaign", command)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{candidate_id}/export",
    summary="Everything held about a candidate: profile, emails, delivery events, campaigns",
    responses={404: {"description": "No such candidate"}},
)
async def export_candidate(candidate_id: uuid.UUID, client: Client, _: Admin) -> CandidateExport:
    command = ExportCandidateCommand(candidate_id=candidate_id)
    return CandidateExport.model_validate(await ask(client, "campaign", command))
