"""The privacy commands: erase a candidate (GDPR Art. 17: personal data gone or pseudonymised,
unsent emails cancelled, the address's hash kept so they are never contacted again) and export
what is held about one (Art. 15). The SQL is `repository/privacy.py`'s."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from services.campaign.repository import SCHEMA, privacy
from shared import audit
from shared.contracts.campaign import (
    CandidateErased,
    CandidateExport,
    EraseCandidateCommand,
    ExportCandidateCommand,
    ExportedCampaign,
    ExportedDeliveryEvent,
    ExportedEmail,
    ExportedSuppression,
)
from shared.errors import Refused

log = logging.getLogger(__name__)


async def erase_candidate(pool: asyncpg.Pool, command: EraseCandidateCommand) -> CandidateErased:
    """Erase the candidate; erasing one already erased answers as before, changing nothing."""
    async with pool.acquire() as conn, conn.transaction():
        erasure = await privacy.erase_candidate(conn, command.candidate_id)
        if erasure is not None and not erasure.already_erased:
            # The id and counts only: the audit log must not hold what was just erased.
            await audit.record(
                conn, SCHEMA, "candidate.erased", "candidate", command.candidate_id,
                actor=command.requested_by,
                detail={
                    "emails_cancelled": erasure.emails_cancelled,
                    "emails_erased": erasure.emails_erased,
                },
            )  # fmt: skip
    if erasure is None:
        raise Refused(f"candidate {command.candidate_id} does not exist", code="not_found")
    if not erasure.already_erased:
        # The id only: the log must not hold what was just erased.
        log.info(
            "erased candidate %s for %s: %d unsent emails cancelled, %d emails erased",
            command.candidate_id, command.requested_by or "(unknown)",
            erasure.emails_cancelled, erasure.emails_erased,
        )  # fmt: skip
    return CandidateErased(
        candidate_id=command.candidate_id,
        erased_at=erasure.erased_at,
        already_erased=erasure.already_erased,
        emails_cancelled=erasure.emails_cancelled,
        emails_erased=erasure.emails_erased,
    )


async def export_candidate(pool: asyncpg.Pool, command: ExportCandidateCommand) -> CandidateExport:
    async with pool.acquire() as conn:
        held = await privacy.held_about(conn, command.candidate_id)
    if held is None:
        raise Refused(f"candidate {command.candidate_id} does not exist", code="not_found")
    return CandidateExport(
        candidate_id=command.candidate_id,
        exported_at=datetime.now(UTC),
        erased_at=held.profile.get("erased_at"),
        profile=held.profile,
        address_erased=held.address_erased,
        suppression=ExportedSuppression.model_validate(held.suppression)
        if held.suppression
        else None,
        campaigns=[ExportedCampaign.model_validate(c) for c in held.campaigns],
        emails=[ExportedEmail.model_validate(e) for e in held.emails],
        delivery_events=[ExportedDeliveryEvent.model_validate(d) for d in held.delivery_events],
    )
