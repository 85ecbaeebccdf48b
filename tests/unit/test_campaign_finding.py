"""Which campaign a status question means, and what a campaign is waiting for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.campaign.domain.finding import CampaignRef, find_campaigns, waiting_for
from shared.contracts.campaign import CampaignCounts, CampaignJob, CampaignView
from shared.contracts.intent import Slots

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def ref(name: str, title: str, city: str, skills: tuple[str, ...], days_ago: int) -> CampaignRef:
    return CampaignRef(
        uuid.uuid4(), name, title, city, city.lower(), skills, NOW - timedelta(days=days_ago)
    )


BERLIN = ref("Staff Backend Engineer outreach", "Staff Backend Engineer", "Berlin", ("python",), 1)
MUNICH = ref("Data Engineer outreach", "Data Engineer", "München", ("python", "spark"), 3)
MADRID = ref("Staff Backend Engineer Madrid", "Staff Backend Engineer", "Madrid", ("go",), 9)
MINE = [BERLIN, MUNICH, MADRID]  # newest first


@pytest.mark.parametrize(
    ("slots", "message", "expected"),
    [
        (Slots(job_title="data engineer"), "", [MUNICH]),
        (Slots(location="munich"), "how is the Munich campaign", [MUNICH]),  # any spelling
        (Slots(skills=["Go"]), "", [MADRID]),  # skills compared in their canonical form
        (Slots(job_title="staff backend", location="Berlin"), "", [BERLIN]),
        (Slots(), "status of my last campaign", [BERLIN]),
        (Slots(skills=["python"]), "wie läuft meine letzte Python-Kampagne", [BERLIN]),
        (Slots(job_title="designer"), "", []),
    ],
)
def test_a_question_names_its_campaign(
    slots: Slots, message: str, expected: list[CampaignRef]
) -> None:
    found = find_campaigns(MINE, slots, message)
    assert found.matches == expected
    assert found.question is None


def test_several_matches_are_a_question_never_a_guess() -> None:
    found = find_campaigns(MINE, Slots(job_title="staff backend engineer"), "how is it going")
    assert found.one is None
    assert found.matches == [BERLIN, MADRID]
    assert found.question == (
        "2 of your campaigns match. Which one? 1. Staff Backend Engineer outreach; "
        "2. Staff Backend Engineer Madrid."
    )


def view(status: str, **counts: int) -> CampaignView:
    return CampaignView(
        campaign_id=uuid.uuid4(), run_id=uuid.uuid4(), name="x", status=status,  # type: ignore[arg-type]
        job=CampaignJob(job_id=uuid.uuid4(), title="x"), created_at=NOW, updated_at=NOW,
        counts=CampaignCounts(**counts),
    )  # fmt: skip


def test_what_a_campaign_waits_for_follows_its_status() -> None:
    assert waiting_for(view("awaiting_review", drafted=4, queued=2)) == (
        "Waiting for review: 4 drafts to decide, 2 to send."
    )
    assert waiting_for(view("sending", sent=3, queued=7)) == "Sending: 3 sent, 7 still to go."
    assert waiting_for(view("monitoring", sent=10, opened=4, replied=1, bounced=0)) == (
        "Watching for replies: 10 sent, 4 opened, 1 replied, 0 bounced."
    )
    paused = view("sending").model_copy(update={"paused": True, "paused_by": "ops"})
    assert waiting_for(paused) == "Sending is paused (by ops); resume it to go on."
    assert waiting_for(view("cancelled")) == "Nothing: it is cancelled."
