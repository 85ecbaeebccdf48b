"""Which of a recruiter's campaigns a question about "the campaign" means ("how is my Berlin Python
campaign doing?", "any replies on the Staff Backend campaign?", "status of my last campaign"),
and what a campaign is waiting for, said in a sentence.

A campaign is named by its job (the title's words), its city (the job's, or the one it searched),
or a skill it searched for; every criterion the question gives must hold. "Last" (or "latest",
"letzte", "última") picks the newest of those that match. Several matches and no "last" is a
question back, never a guess.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.campaign.domain.extraction import canonical_skills, city_spellings, title_words
from shared.contracts.campaign import CampaignView
from shared.contracts.intent import Slots

MAX_OPTIONS = 5
_LATEST = re.compile(
    r"\b(last|latest|newest|most recent|letzte[nrs]?|neueste[nrs]?|[úu]ltim[ao]s?|reciente)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CampaignRef:
    """What finding a campaign looks at; the caller's campaigns come newest first."""

    campaign_id: uuid.UUID
    name: str
    job_title: str
    job_city: str | None
    searched_city: str | None
    skills: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class Found:
    """The campaigns the question means (newest first), and the question back when several do."""

    matches: list[CampaignRef]
    question: str | None = None

    @property
    def one(self) -> CampaignRef | None:
        return self.matches[0] if len(self.matches) == 1 else None


def wants_latest(message: str) -> bool:
    return _LATEST.search(message) is not None


def find_campaigns(refs: Sequence[CampaignRef], slots: Slots, message: str = "") -> Found:
    """The campaigns among `refs` (newest first) that `slots` and the message's words name."""
    matches = [ref for ref in refs if _named(ref, slots)]
    if len(matches) > 1 and wants_latest(message):
        matches = matches[:1]
    if len(matches) <= 1:
        return Found(matches)
    shown = "; ".join(f"{n}. {ref.name}" for n, ref in enumerate(matches[:MAX_OPTIONS], start=1))
    more = f"; and {len(matches) - MAX_OPTIONS} more" if len(matches) > MAX_OPTIONS else ""
    return Found(matches, f"{len(matches)} of your campaigns match. Which one? {shown}{more}.")


def _named(ref: CampaignRef, slots: Slots) -> bool:
    if slots.job_title and not title_words(slots.job_title) <= title_words(ref.job_title):
        return False
    if slots.location:
        spellings = set(city_spellings(slots.location))
        cities = {c.strip().lower() for c in (ref.job_city, ref.searched_city) if c}
        if not spellings & cities:
            return False
    return not slots.skills or bool(set(canonical_skills(slots.skills)) & set(ref.skills))


def waiting_for(view: CampaignView) -> str:
    """What the campaign is waiting for, in a sentence for the recruiter."""
    counts = view.counts
    if view.paused and view.status in ("extracting", "generating", "awaiting_review", "sending"):
        return f"Sending is paused (by {view.paused_by or 'someone'}); resume it to go on."
    if view.status in ("extracting", "generating"):
        drafting = view.drafting
        return f"Drafting its emails: {drafting.generated} of {drafting.total} written."
    if view.status == "awaiting_review":
        return f"Waiting for review: {counts.drafted} drafts to decide, {counts.queued} to send."
    if view.status == "sending":
        return f"Sending: {counts.sent} sent, {counts.queued} still to go."
    if view.status == "monitoring":
        return (
            f"Watching for replies: {counts.sent} sent, {counts.opened} opened, "
            f"{counts.replied} replied, {counts.bounced} bounced."
        )
    return f"Nothing: it is {view.status}."
