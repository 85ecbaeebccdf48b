"""The follow-up sequence a campaign request asks for, read from the message in English, German and
Spanish, and kept out of the other slots (its numbers are no limit and no years)."""

from __future__ import annotations

import pytest

from services.intent.domain.follow_up_slot import follow_up_request
from services.intent.domain.slots import SlotExtractor
from services.intent.domain.vocabulary import load_vocabulary


@pytest.mark.parametrize(
    ("message", "waits"),
    [
        ("Email the Python devs in Berlin about the Staff role with 2 follow-ups", [3, 5]),
        ("... about the Staff role, with a follow-up", [3]),
        ("... about the Staff role with one follow up", [3]),
        ("... about the role and follow up after 3 and 5 days", [3, 5]),
        ("... about the role with 3 follow ups after 2, 4 and 6 working days", [2, 4, 6]),
        ("... about the role with 2 follow-ups after 4 days", [4, 4]),
        ("... about the role with 5 follow-ups", [3, 5, 7]),  # at most three
        ("... about the role, follow up after 45 days", [30]),  # at most 30 working days
        (
            "Schreib den Python-Entwicklern in Berlin wegen der Stelle mit zwei Nachfassmails",
            [3, 5],
        ),
        ("... wegen der Stelle, nach 4 Tagen nachfassen", [3]),  # a cue before the days: default
        ("... wegen der Stelle mit 2 Erinnerungen nach 2 und 4 Werktagen", [2, 4]),
        ("Escribe a los desarrolladores en Madrid sobre el puesto con 2 seguimientos", [3, 5]),
        ("... sobre el puesto con un seguimiento a los 4 días", [4]),
        ("How many Go developers in Amsterdam do we have?", []),
        ("Email the Go developers in Amsterdam about the Go role", []),
    ],
)
def test_the_follow_ups_a_message_asks_for(message: str, waits: list[int]) -> None:
    assert follow_up_request(message.lower())[0] == waits


def test_the_phrase_is_blanked_for_the_other_slots() -> None:
    waits, rest = follow_up_request("email 20 devs about the role and follow up after 3 and 5 days")
    assert waits == [3, 5]
    assert "3" not in rest
    assert "5" not in rest
    assert rest.startswith("email 20 devs about the role and ")


def test_a_campaign_request_with_follow_ups_keeps_its_other_slots() -> None:
    slots = SlotExtractor(load_vocabulary()).extract(
        "Email the top 20 senior Python developers in Berlin about the Staff Backend Engineer "
        "role with 2 follow-ups after 3 and 5 days"
    )
    assert slots.follow_up_days == [3, 5]
    assert slots.limit == 20
    assert slots.min_years_experience is None
    assert slots.skills == ["python"]
    assert slots.job_title == "staff backend engineer"
