"""A talent-pool search in words: how many matches to show, why each matches, the one-line
summary, and the answer built from the counts and the ranked matches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.campaign.domain.extraction import CandidateMatch
from services.campaign.domain.searching import (
    Counted,
    Reach,
    answer,
    criteria,
    shown_limit,
    summary,
    why,
)
from shared.contracts.campaign import CampaignJob, SearchCandidatesCommand
from shared.contracts.intent import Slots

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def match(
    name: str, *, years: int | None = 9, matched: list[str] | None = None, city: str = "Berlin"
) -> CandidateMatch:
    return CandidateMatch(
        candidate_id=uuid.uuid4(),
        full_name=name,
        first_name=None,
        email=f"{name.lower().replace(' ', '.')}@example.com",
        city=city,
        seniority="senior",
        years_experience=years,
        skills=["python", "django", "sql"],
        matched_skills=matched if matched is not None else ["python", "django"],
        headline=None,
        summary=None,
        found_via=None,
    )


@pytest.mark.parametrize(
    ("requested", "slots_limit", "expected"),
    [(10, None, 10), (10, 5, 5), (3, 200, 50), (50, 1, 1), (7, None, 7)],
)
def test_the_slots_number_wins_and_is_capped(
    requested: int, slots_limit: int | None, expected: int
) -> None:
    assert shown_limit(requested, slots_limit) == expected


def test_the_command_shows_ten_by_default_and_at_most_fifty() -> None:
    assert SearchCandidatesCommand().limit == 10
    with pytest.raises(ValueError, match="limit"):
        SearchCandidatesCommand(limit=51)


def test_why_names_the_skills_and_the_experience() -> None:
    slots = Slots(skills=["Python", "django"])
    assert why(match("Ada"), slots) == (
        "has 2 of 2 skills asked for (python, django); 9 years of experience"
    )
    # A skill listed twice is one skill; one year is a year.
    twice = match("Bo", years=1, matched=["python", "python"])
    assert why(twice, slots) == "has 1 of 2 skills asked for (python); 1 year of experience"


def test_why_mentions_only_what_was_asked_for() -> None:
    assert why(match("Ada", years=None), Slots()) == "years of experience unknown"
    asked = Slots(skills=["go"], location="berlin", seniority="senior")
    assert why(match("Ada", matched=["go"]), asked) == (
        "has 1 of 1 skills asked for (go); 9 years of experience; senior; in Berlin"
    )


def test_criteria_read_as_a_phrase() -> None:
    slots = Slots(
        skills=["Python", "Django"], location=" Berlin ", seniority="senior", min_years_experience=5
    )
    assert criteria(slots) == "python or django in Berlin (senior, 5+ years)"
    assert criteria(Slots()) == ""


def test_criteria_name_the_country_remote_and_the_skills_ruled_out() -> None:
    react = Slots(skills=["React"], country="ES", exclude_skills=["Angular"])
    assert criteria(react) == "react in Spain, not angular"
    everything = Slots(
        skills=["python", "django"], location="Berlin", country="DE", seniority="senior",
        min_years_experience=5, remote=True, exclude_skills=[" Java", "php", "java"],
    )  # fmt: skip
    assert criteria(everything) == (
        "python or django in Berlin, Germany (senior, 5+ years, remote), not java or php"
    )
    assert criteria(Slots(skills=["go"], remote=False)) == "go (on-site)"
    assert criteria(Slots(exclude_skills=["java"])) == "not java"
    assert criteria(Slots(skills=["go"], country="ZZ")) == "go in ZZ"  # a code it cannot name


def test_the_summary_says_the_country_and_the_exclusions() -> None:
    slots = Slots(skills=["python"], country="ES", remote=True, exclude_skills=["java"])
    found = [(match("Ada", matched=["python"], city="Madrid"), Reach())]
    result = answer(slots, None, Counted(matched=3, reachable=3, cap=10_000), found)

    assert result.summary == (
        "3 candidates match python in Spain (remote), not java; the best: Ada."
    )
    assert result.matches[0].why == (
        "has 1 of 1 skills asked for (python); 9 years of experience; in Madrid; no java"
    )
    assert summary(slots, Counted(0, 0, 10_000), []) == (
        "No candidate matches python in Spain (remote), not java."
    )


def test_the_summary_counts_flags_and_names_the_top() -> None:
    slots = Slots(skills=["python"], location="Berlin", seniority="senior")
    one = ["python"]
    found = [
        (match("Ada Lovelace", matched=one), Reach()),
        (match("Grace Hopper", matched=one), Reach(suppressed="unsubscribed")),
        (
            match("Alan Turing", matched=one),
            Reach(contacted_at=NOW, contacted_about="Staff Engineer"),
        ),
    ]
    job = CampaignJob(job_id=uuid.uuid4(), title="Staff Engineer")
    result = answer(slots, job, Counted(matched=12, reachable=10, cap=10_000), found)

    assert result.summary == (
        "12 candidates match python in Berlin (senior), 10 of them free to contact; the top 3: "
        "Ada Lovelace, Grace Hopper (suppressed), Alan Turing (contacted recently)."
    )
    assert (result.total, result.total_is_lower_bound, result.available) == (12, False, 10)
    assert result.job == job
    assert [h.full_name for h in result.matches] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    assert result.matches[1].suppressed == "unsubscribed"
    assert (result.matches[2].contacted_at, result.matches[2].contacted_about) == (
        NOW,
        "Staff Engineer",
    )
    assert result.matches[0].why == (
        "has 1 of 1 skills asked for (python); 9 years of experience; senior; in Berlin"
    )


def test_a_capped_count_is_a_lower_bound() -> None:
    counted = Counted(matched=10_001, reachable=10_001, cap=10_000)
    assert (counted.total, counted.is_lower_bound, counted.available) == (10_000, True, 10_000)
    hits = answer(Slots(skills=["python"]), None, counted, [(match("Ada"), Reach())]).matches
    line = summary(Slots(skills=["python"]), counted, hits)
    assert line == "More than 10,000 candidates match python; the best: Ada."

    some = Counted(matched=10_001, reachable=9_000, cap=10_000)
    assert summary(Slots(skills=["python"]), some, []) == (
        "More than 10,000 candidates match python, at least 9,000 of them free to contact."
    )


def test_nobody_and_one() -> None:
    assert summary(Slots(skills=["cobol"]), Counted(0, 0, 10_000), []) == (
        "No candidate matches cobol."
    )
    hits = answer(Slots(), None, Counted(1, 1, 10_000), [(match("Ada"), Reach())]).matches
    assert summary(Slots(), Counted(1, 1, 10_000), hits) == "1 candidate matches; the best: Ada."


def test_the_summary_lists_five_names_at_most() -> None:
    found = [(match(f"P{n}"), Reach()) for n in range(8)]
    result = answer(Slots(skills=["python"]), None, Counted(8, 8, 10_000), found)
    assert result.summary == (
        "8 candidates match python; the top 8: P0, P1, P2, P3, P4 and 3 more."
    )


def test_a_city_as_the_intent_service_writes_it_is_shown_capitalised() -> None:
    assert criteria(Slots(skills=["python"], location="new york")) == "python in New York"
    assert criteria(Slots(location="São Paulo")) == "in São Paulo"
