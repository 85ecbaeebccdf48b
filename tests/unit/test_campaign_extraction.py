"""The pure parts of candidate extraction: the query it builds and how a job title is matched.
(The query's results are checked against PostgreSQL in the integration tests.)"""

from __future__ import annotations

import uuid

import pytest

from services.campaign.domain.extraction import (
    MAX_CLARIFICATION_OPTIONS,
    JobClarification,
    JobMatch,
    JobOption,
    audience_question,
    city_spellings,
    extraction_limit,
    match_job_title,
    title_words,
)
from services.campaign.repository.candidates import build_extraction_query
from shared.contracts.intent import Slots

JOB = uuid.UUID(int=1)
CAMPAIGN = uuid.UUID(int=2)


def build(slots: Slots, *, window_days: int = 90, limit: int = 50) -> tuple[str, list[object]]:
    query = build_extraction_query(slots, JOB, CAMPAIGN, window_days=window_days, limit=limit)
    return query.sql, list(query.args)


def test_every_slot_becomes_a_parameter_in_order() -> None:
    slots = Slots(
        skills=["Python", " postgresql ", "python"],
        location="Berlin",
        seniority="senior",
        min_years_experience=5,
    )

    sql, args = build(slots, window_days=30, limit=7)

    assert args == [
        ["python", "postgresql"],
        ["berlin", "berlín"],
        "senior",
        5,
        JOB,
        CAMPAIGN,
        30,
        7,
    ]
    assert "c.skills && $1::text[]" in sql
    assert "lower(c.city) = ANY($2::text[])" in sql
    assert "c.seniority = $3" in sql
    assert "c.years_experience >= $4" in sql
    assert "e.job_id = $5" in sql
    assert "e.campaign_id <> $6" in sql
    assert "make_interval(days => $7)" in sql
    assert sql.endswith("LIMIT $8")


def test_user_text_never_enters_the_sql() -> None:
    slots = Slots(skills=["x'; DROP TABLE campaign.candidates; --"], location="O'Brien town")

    sql, args = build(slots)

    assert "DROP" not in sql
    assert "O'Brien" not in sql
    assert args[0] == ["x'; drop table campaign.candidates; --"]


def test_without_slots_only_the_exclusions_filter() -> None:
    sql, args = build(Slots())

    assert args == [JOB, CAMPAIGN, 90, 50]
    assert "c.skills &&" not in sql
    assert "lower(c.city)" not in sql
    assert "c.seniority =" not in sql
    assert "campaign.suppressions" in sql
    assert "'{}'::text[] AS matched_skills" in sql


def test_ranking_is_matched_skills_then_experience_then_id() -> None:
    sql, _ = build(Slots(skills=["go"]))

    order = sql[sql.rindex("ORDER BY") :]
    assert order.startswith(
        "ORDER BY cardinality(m.matched_skills) DESC, c.years_experience DESC NULLS LAST,"
        " c.candidate_id"
    )


def test_contact_history_counts_pending_drafts_and_sent_mail_only() -> None:
    sql, _ = build(Slots())

    assert "e.status IN ('drafted', 'approved', 'sending', 'sent', 'bounced')" in sql
    assert "coalesce(e.sent_at, e.created_at) >" in sql


def test_a_city_matches_its_local_spellings() -> None:
    assert {"munich", "münchen"} <= set(city_spellings("München"))
    assert {"munich", "münchen"} <= set(city_spellings("  MUNICH "))
    assert city_spellings("Atlantis") == ["atlantis"]


@pytest.mark.parametrize(("requested", "expected"), [(None, 50), (10, 10), (5_000, 500), (0, 1)])
def test_the_limit_defaults_and_is_capped(requested: int | None, expected: int) -> None:
    assert extraction_limit(requested, default=50, maximum=500) == expected


def test_a_bad_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        build(Slots(), limit=0)


# --- Job titles ------------------------------------------------------------------------------


def job(title: str, city: str | None = "Berlin") -> JobOption:
    return JobOption(job_id=uuid.uuid5(JOB, title + str(city)), title=title, city=city)


OPEN_JOBS = [
    job("Staff Backend Engineer"),
    job("Senior Backend Engineer (Go)"),
    job("Staff Frontend Engineer"),
    job("Data Engineer"),
    job("Senior Data Engineer"),
    job("Senior Python Developer"),
    job("Junior Python Developer"),
    job("Backend Engineer (Node.js)"),
    job("Backend Engineer (Java)"),
    job("Backend Engineer (PHP)"),
    job("Backend Engineer (Scala)"),
]


def test_title_words_drop_filler_and_plurals() -> None:
    assert title_words("the Staff Backend role") == {"staff", "backend"}
    assert title_words("Backend Engineers (Node.js)") == {"backend", "engineer", "node.js"}
    assert title_words(".NET and C++ positions") == {".net", "c++"}


def test_an_exact_title_matches_whatever_its_case() -> None:
    result = match_job_title("  data   ENGINEER ", OPEN_JOBS)

    assert result == JobMatch(job_id=OPEN_JOBS[3].job_id, title="Data Engineer", matched_by="title")


def test_the_same_words_beat_a_longer_title_containing_them() -> None:
    result = match_job_title("Data Engineer role", OPEN_JOBS)

    assert isinstance(result, JobMatch)
    assert result.title == "Data Engineer"
    assert result.matched_by == "words"


def test_a_unique_title_containing_every_word_matches() -> None:
    result = match_job_title("Staff Backend role", OPEN_JOBS)

    assert isinstance(result, JobMatch)
    assert result.title == "Staff Backend Engineer"


def test_several_matching_titles_are_a_question_listing_five() -> None:
    result = match_job_title("Backend Engineer position", OPEN_JOBS)

    assert isinstance(result, JobClarification)
    assert len(result.options) == 5
    assert [o.title for o in result.options] == [
        "Staff Backend Engineer",
        "Senior Backend Engineer (Go)",
        "Backend Engineer (Node.js)",
        "Backend Engineer (Java)",
        "Backend Engineer (PHP)",
    ]
    assert '"Backend Engineer position" matches 6 open jobs' in result.question
    assert "Backend Engineer (Java) (Berlin)" in result.question
    assert "and 1 more" in result.question


def test_two_jobs_with_the_same_title_are_a_question() -> None:
    twins = [job("Data Engineer", "Berlin"), job("Data Engineer", "Madrid")]

    result = match_job_title("data engineer", twins)

    assert isinstance(result, JobClarification)
    assert [o.city for o in result.options] == ["Berlin", "Madrid"]


def test_no_match_offers_the_titles_sharing_most_words() -> None:
    result = match_job_title("Senior Python Engineer", OPEN_JOBS)

    assert isinstance(result, JobClarification)
    assert "no open job matching" in result.question
    # Two shared words each, in the order given (most recent first); then one shared word.
    assert [o.title for o in result.options] == [
        "Senior Backend Engineer (Go)",
        "Senior Data Engineer",
        "Senior Python Developer",
        "Staff Backend Engineer",
        "Staff Frontend Engineer",
    ]


def test_no_title_at_all_asks_which_job() -> None:
    result = match_job_title("  ", OPEN_JOBS)

    assert isinstance(result, JobClarification)
    assert result.question.startswith("Which open job is this campaign for?")
    assert len(result.options) == 5


def test_no_open_jobs_asks_without_options() -> None:
    result = match_job_title("Data Engineer", [])

    assert result == JobClarification(
        requested="Data Engineer",
        question='I found no open job matching "Data Engineer". '
        "Which open job is this campaign for?",
        options=[],
    )


# --- nobody where the request says: which other city? -----------------------------------------


def test_nobody_here_asks_which_of_the_cities_with_matches_instead() -> None:
    slots = Slots(skills=["python"], location="Munich")
    places = [("Berlin", 42), ("munich", 3), ("Hamburg", 7)]
    question = audience_question(slots, "Staff Backend Engineer", places)
    assert question is not None
    assert question.field == "slots.location"
    assert [c.value for c in question.choices] == ["Berlin", "Hamburg"]  # not the city asked
    assert [c.label for c in question.choices] == ["Berlin (42)", "Hamburg (7)"]
    assert "skills python, location Munich" in question.text
    assert "Staff Backend Engineer" in question.text
    assert question.pick("2") == "Hamburg"
    assert question.pick("berlin") == "Berlin"


def test_nowhere_else_to_offer_is_no_question() -> None:
    slots = Slots(skills=["cobol"], location="Berlin")
    assert audience_question(slots, "Mainframe Engineer", []) is None
    assert audience_question(slots, "Mainframe Engineer", [("Berlin", 4)]) is None


def test_at_most_five_cities_are_offered() -> None:
    places = [(f"City {n}", 10 - n) for n in range(8)]
    question = audience_question(Slots(skills=["go"]), "Go Engineer", places)
    assert question is not None
    assert len(question.choices) == MAX_CLARIFICATION_OPTIONS == 5
