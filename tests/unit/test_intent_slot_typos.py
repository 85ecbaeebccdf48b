"""What recruiters type: misspelt skills and cities, ranges of years, lower-case skill names that
are ordinary words too."""

from __future__ import annotations

import pytest

from services.intent.domain.slots import CAMPAIGN_MARKERS, SlotExtractor
from services.intent.domain.vocabulary import load_vocabulary
from shared.contracts.intent import Slots


@pytest.fixture(scope="module")
def extractor() -> SlotExtractor:
    return SlotExtractor(load_vocabulary())


@pytest.mark.parametrize(
    ("message", "slots"),
    [
        ("any pyhton developers in berlin", Slots(skills=["python"], location="berlin")),
        ("find react developers in barcelna", Slots(skills=["react"], location="barcelona")),
        ("kuberntes people in Munich", Slots(skills=["kubernetes"], location="munich")),
        ("reach out to react devs in Paris", Slots(skills=["react"], location="paris")),
        ("python devs with 2-4 years", Slots(skills=["python"], min_years_experience=2)),
        ("Java-Entwickler mit 3 bis 5 Jahren", Slots(skills=["java"], min_years_experience=3)),
        ("devs de go en sevilla", Slots(skills=["go"], location="sevilla")),
        ("data engineers who know spark", Slots(skills=["spark"])),
    ],
)
def test_what_recruiters_type(extractor: SlotExtractor, message: str, slots: Slots) -> None:
    assert extractor.extract(message) == slots


@pytest.mark.parametrize(
    "message",
    ["let's go over the settle date", "reach out to them", "a string in Genera format"],
)
def test_ordinary_words_are_not_corrected_into_skills_or_cities(
    extractor: SlotExtractor, message: str
) -> None:
    slots = extractor.extract(message)
    assert slots.skills == []
    assert slots.location is None


def test_a_campaign_is_named_by_its_city_skill_or_title(extractor: SlotExtractor) -> None:
    read = extractor.read("is the amsterdam go campaign still waiting", CAMPAIGN_MARKERS).slots
    assert (read.skills, read.location) == (["go"], "amsterdam")
    title = extractor.read("wie läuft die Kampagne für den Backend Engineer", CAMPAIGN_MARKERS)
    assert title.slots.job_title == "backend engineer"
    # Without the campaign words, "campaign" names no job.
    assert extractor.extract("how is the Data Engineer campaign going").job_title is None
