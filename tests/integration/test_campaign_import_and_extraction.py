"""CSV import and candidate extraction against the real campaign schema.

The session database is shared with other tests and may hold the demo seed, so every test makes
rows of its own, marked with a fresh tag (in emails, external refs, skills, cities and job titles),
filters on that tag, and deletes its rows afterwards.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.campaign.domain.extraction import JobClarification, JobMatch
from services.campaign.domain.importing import CANDIDATES, JOBS, ImportFileError, parse_csv
from services.campaign.importing import import_csv
from services.campaign.repository.candidates import extract_candidates, resolve_job
from shared.contracts.intent import Slots
from shared.db import with_database
from shared.settings import Settings
from tests.support.campaign_rows import (
    add_campaign,
    add_candidate,
    add_email,
    add_job,
    add_suppression,
)
from tests.support.processes import REPO, child_env, python_module

pytestmark = pytest.mark.integration

CANDIDATE_HEADER = (
    "external_ref,full_name,first_name,email,city,country,timezone,seniority,years_experience,"
    "skills,headline,summary,found_via"
)
JOB_HEADER = "external_ref,title,team,city,country,remote,seniority,skills,description,status"


def write(tmp_path: Path, header: str, *lines: str) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


# --- Importing -------------------------------------------------------------------------------


async def test_valid_rows_are_kept_and_bad_rows_reported_by_line(
    db: asyncpg.Pool, tag: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        CANDIDATE_HEADER,
        f"ref-{tag}-1,Ada Lovelace,Ada,ada-{tag}@example.com,London,gb,Europe/London,Senior,12,"
        '" Python ;PostgreSQL| python",Engineer,"Writes code,\nand poems",GitHub',
        f"ref-{tag}-2,Bob Stone,,bob-{tag}-at-example.com,Berlin,DE,,mid,5,python,,,",
        f"ref-{tag}-3,Cleo Park,,cleo-{tag}@example.com,Berlin,DE,,wizard,5,python,,,",
        f"ref-{tag}-4,Dev Rao,,dev-{tag}@example.com,Berlin,Germany,,mid,5,python,,,",
        f"ref-{tag}-5,Eve Moss,,eve-{tag}@example.com,Berlin,DE,,mid,five,python,,,",
        f",Finn Holt,,finn-{tag}@example.com,,,,,,,,,",
    )

    async with db.acquire() as conn:
        result = await import_csv(conn, path, CANDIDATES)
        rows = await conn.fetch(
            "SELECT * FROM campaign.candidates WHERE email LIKE $1 ORDER BY email", f"%{tag}%"
        )

    assert (result.imported, result.updated, result.rejected) == (2, 0, 4)
    # Ada's quoted summary spans lines 2-3, so the rows after it start one line later.
    assert [(e.line, e.column) for e in result.errors] == [
        (4, "email"),
        (5, "seniority"),
        (6, "country"),
        (7, "years_experience"),
    ]
    assert "not an email address" in result.errors[0].message
    assert result.exit_code == 0
    ada, finn = rows
    assert ada["skills"] == ["python", "postgresql"]
    assert (ada["country"], ada["seniority"], ada["years_experience"]) == ("GB", "senior", 12)
    assert ada["summary"] == "Writes code,\nand poems"
    assert (ada["source"], finn["source"]) == ("csv-import", "csv-import")
    assert (finn["external_ref"], finn["skills"], finn["city"]) == (None, [], None)


async def test_a_second_import_updates_by_external_ref_or_email(
    db: asyncpg.Pool, tag: str, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        CANDIDATE_HEADER,
        f"ref-{tag}-1,Ada Lovelace,Ada,ada-{tag}@example.com,London,GB,,senior,12,python,,,",
        f",Bob Stone,Bob,bob-{tag}@example.com,Berlin,DE,,mid,5,go,,,",
        f"ref-{tag}-3,Cleo Park,Cleo,cleo-{tag}@example.com,Madrid,ES,,staff,15,rust,,,",
    )
    second = write(
        tmp_path,
        "external_ref,full_name,email,city",  # no skills column: skills stay as they are
        f"ref-{tag}-1,Ada King,ada-{tag}@example.com,Paris",
        f",Bob Stone,BOB-{tag}@example.com,Hamburg",
        f"ref-{tag}-9,Someone Else,cleo-{tag}@example.com,Rome",
        f"ref-{tag}-10,Dana New,dana-{tag}@example.com,Oslo",
    )

    async with db.acquire() as conn:
        await import_csv(conn, first, CANDIDATES)
        result = await import_csv(conn, second, CANDIDATES)
        rows = await conn.fetch(
            "SELECT external_ref, full_name, email, city, skills FROM campaign.candidates"
            " WHERE email ILIKE $1 ORDER BY lower(email)",
            f"%{tag}%",
        )

    assert (result.imported, result.updated, result.rejected) == (1, 2, 1)
    assert [(e.line, e.column) for e in result.errors] == [(4, "email")]
    assert f"external_ref ref-{tag}-3" in result.errors[0].message
    assert [tuple(r) for r in rows] == [
        (f"ref-{tag}-1", "Ada King", f"ada-{tag}@example.com", "Paris", ["python"]),
        (None, "Bob Stone", f"BOB-{tag}@example.com", "Hamburg", ["go"]),
        (f"ref-{tag}-3", "Cleo Park", f"cleo-{tag}@example.com", "Madrid", ["rust"]),
        (f"ref-{tag}-10", "Dana New", f"dana-{tag}@example.com", "Oslo", []),
    ]


async def test_jobs_import_updates_by_external_ref(
    db: asyncpg.Pool, tag: str, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        JOB_HEADER,
        f"job-{tag}-1,Widget Engineer {tag},Platform,Berlin,de,yes,senior,Go;Kafka,Build it,open",
        f",Gadget Designer {tag},,,,,,,,",
        f"job-{tag}-3,Bad Status {tag},,,,,,,,paused",
        f"job-{tag}-4,Bad Remote {tag},,,,maybe,,,,",
    )
    second = write(
        tmp_path, "external_ref,title,status", f"job-{tag}-1,Widget Engineer {tag},closed"
    )

    async with db.acquire() as conn:
        created = await import_csv(conn, first, JOBS)
        changed = await import_csv(conn, second, JOBS)
        rows = await conn.fetch(
            "SELECT title, country, remote, skills, description, status, source, team"
            " FROM campaign.jobs WHERE title LIKE $1 ORDER BY title",
            f"%{tag}",
        )

    assert (created.imported, created.updated, created.rejected) == (2, 0, 2)
    assert [(e.line, e.column) for e in created.errors] == [(4, "status"), (5, "remote")]
    assert (changed.imported, changed.updated) == (0, 1)
    assert [tuple(r) for r in rows] == [
        (f"Gadget Designer {tag}", None, False, [], "", "open", "csv-import", None),
        (
            f"Widget Engineer {tag}",
            "DE",
            True,
            ["go", "kafka"],
            "Build it",
            "closed",
            "csv-import",
            "Platform",
        ),
    ]


def test_a_file_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "full_name,city", "Ada Lovelace,London")

    with pytest.raises(ImportFileError, match="lacks the required column"):
        parse_csv(path, CANDIDATES)


async def test_ten_thousand_rows_import_in_a_few_seconds(
    db: asyncpg.Pool, tag: str, tmp_path: Path
) -> None:
    lines = [
        f"ref-{tag}-{n},Person {n},P,p{n}-{tag}@example.com,Berlin,DE,Europe/Berlin,mid,{n % 40},"
        "python;sql,Engineer,Likes data,GitHub"
        for n in range(10_000)
    ]
    path = write(tmp_path, CANDIDATE_HEADER, *lines)

    async with db.acquire() as conn:
        started = time.perf_counter()
        created = await import_csv(conn, path, CANDIDATES)
        middle = time.perf_counter()
        again = await import_csv(conn, path, CANDIDATES)
        finished = time.perf_counter()

    assert (created.imported, created.updated, created.rejected) == (10_000, 0, 0)
    assert (again.imported, again.updated, again.rejected) == (0, 10_000, 0)
    assert middle - started < 5, f"inserting 10,000 rows took {middle - started:.2f}s"
    assert finished - middle < 5, f"updating 10,000 rows took {finished - middle:.2f}s"


# --- The command line ------------------------------------------------------------------------


async def campaign_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """Run `python -m services.campaign ARGS`: its exit code, stdout and stderr."""
    env = child_env({"DATABASE_URL": database_url, "ENVIRONMENT": "test"})
    proc = await asyncio.create_subprocess_exec(
        *python_module("services.campaign", *args),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_imports_what_it_can_and_exits_0(
    prepared: Settings, tag: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        CANDIDATE_HEADER,
        f"ref-{tag}-1,Ada Lovelace,Ada,ada-{tag}@example.com,London,GB,,senior,12,python,,,",
        f"ref-{tag}-2,Bob Stone,,not-an-email-{tag},Berlin,DE,,mid,5,go,,,",
    )

    code, out, _ = await campaign_cli(prepared.database_url, "import-candidates", str(path))

    assert code == 0
    assert out.splitlines()[0] == "imported 1, updated 0, rejected 1"
    assert out.splitlines()[1].startswith("line 3, email: ")


async def test_cli_exits_1_when_every_row_is_rejected_and_lists_50_errors(
    prepared: Settings, tag: str, tmp_path: Path
) -> None:
    lines = [f"ref-{tag}-{n},Person {n},,person{n}-{tag}@example.com,,,,,-1,,,," for n in range(60)]
    path = write(tmp_path, CANDIDATE_HEADER, *lines)

    code, out, _ = await campaign_cli(prepared.database_url, "import-candidates", str(path))

    assert code == 1
    report = out.splitlines()
    assert report[0] == "imported 0, updated 0, rejected 60"
    assert report[1].startswith("line 2, years_experience: ")
    assert len(report) == 1 + 50 + 1
    assert report[-1] == "... and 10 more"


async def test_cli_exits_0_for_a_file_with_only_a_header(
    prepared: Settings, tmp_path: Path
) -> None:
    code, out, _ = await campaign_cli(
        prepared.database_url, "import-jobs", str(write(tmp_path, JOB_HEADER))
    )

    assert (code, out.strip()) == (0, "imported 0, updated 0, rejected 0")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("full_name,city\nAda,London\n", "lacks the required column(s) email"),
        ("", "is empty"),
    ],
)
async def test_cli_exits_2_with_one_line_for_an_unusable_file(
    prepared: Settings, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "candidates.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    code, out, err = await campaign_cli(prepared.database_url, "import-candidates", str(path))

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("campaign: error: ")
    assert message in err


# --- Extraction ------------------------------------------------------------------------------


def address(name: str, tag: str) -> str:
    """A candidate's address, in mixed case: matching addresses must ignore case."""
    return f"{name}-{tag}@Example.com"


async def test_extraction_filters_and_ranks(db: asyncpg.Pool, tag: str) -> None:
    s1, s2, s3 = f"s1-{tag}", f"s2-{tag}", f"s3-{tag}"
    town = f"Gotham-{tag}"
    async with db.acquire() as conn:
        job_id = await add_job(conn, f"Ranking {tag}")
        campaign_id = await add_campaign(conn, job_id)
        people = {
            name: await add_candidate(
                conn, name, email=address(name, tag), skills=skills, city=city,
                seniority=seniority, years=years,
            )
            for name, skills, city, seniority, years in [
                ("both", [s3, s2, s1], town, "senior", 3),
                ("onea", [s2], town, "senior", 12),
                ("oneb", [s1], town.upper(), "senior", 12),
                ("fewer", [s1], town, "senior", 4),
                ("mid", [s1, s2], town, "mid", 9),
                ("away", [s1, s2], f"Metropolis-{tag}", "senior", 9),
                ("novice", [s1, s2], town, "senior", 1),
                ("other", [s3], town, "senior", 20),
            ]
        }  # fmt: skip
        slots = Slots(
            skills=[s1, s2], location=town.lower(), seniority="senior", min_years_experience=2
        )

        found = await extract_candidates(conn, slots, job_id, campaign_id, window_days=90, limit=10)
        top_two = await extract_candidates(
            conn, slots, job_id, campaign_id, window_days=90, limit=2
        )

    tied = sorted([people["onea"], people["oneb"]])
    assert [c.candidate_id for c in found] == [people["both"], *tied, people["fewer"]]
    assert found[0].matched_skills == [s2, s1]  # in the candidate's own order
    assert found[0].email == f"both-{tag}@Example.com"
    assert [c.candidate_id for c in top_two] == [people["both"], tied[0]]


async def test_suppressed_addresses_are_skipped(db: asyncpg.Pool, tag: str) -> None:
    skill = f"s-{tag}"
    async with db.acquire() as conn:
        job_id = await add_job(conn, f"Suppression {tag}")
        campaign_id = await add_campaign(conn, job_id)
        kept = await add_candidate(conn, "kept", email=address("kept", tag), skills=[skill])
        await add_candidate(conn, "gone", email=address("gone", tag), skills=[skill])
        # stored lower-case; the candidate's address is not
        await add_suppression(conn, f"gone-{tag}@example.com")

        found = await extract_candidates(
            conn, Slots(skills=[skill]), job_id, campaign_id, window_days=90, limit=10
        )

    assert [c.candidate_id for c in found] == [kept]


async def test_recent_contact_about_the_same_job_is_skipped(db: asyncpg.Pool, tag: str) -> None:
    skill = f"s-{tag}"
    async with db.acquire() as conn:
        job_id = await add_job(conn, f"Window {tag}")
        other_job = await add_job(conn, f"Other {tag}")
        campaign_id = await add_campaign(conn, job_id)
        earlier = await add_campaign(conn, job_id)
        elsewhere = await add_campaign(conn, other_job)
        people = {
            name: await add_candidate(
                conn, name, email=address(name, tag), skills=[skill], years=years
            )
            for years, name in enumerate(
                ["recent", "longago", "otherjob", "drafted", "rejected", "ours", "never"]
            )
        }
        for campaign, job, name, status, days in [
            (earlier, job_id, "recent", "sent", 10),
            (earlier, job_id, "longago", "sent", 200),
            (elsewhere, other_job, "otherjob", "sent", 10),
            (earlier, job_id, "drafted", "drafted", 10),
            (earlier, job_id, "rejected", "rejected", 10),
            (campaign_id, job_id, "ours", "drafted", 0),
        ]:
            when = datetime.now(UTC) - timedelta(days=days)
            await add_email(
                conn, campaign, job, people[name], to_address="x@example.com", status=status,
                created_at=when,
            )  # fmt: skip

        found = await extract_candidates(
            conn, Slots(skills=[skill]), job_id, campaign_id, window_days=90, limit=10
        )
        with_short_window = await extract_candidates(
            conn, Slots(skills=[skill]), job_id, campaign_id, window_days=5, limit=10
        )

    by_years_desc = ["never", "ours", "rejected", "otherjob", "longago"]
    assert [c.candidate_id for c in found] == [people[n] for n in by_years_desc]
    assert {c.full_name for c in with_short_window} == set(people)


async def test_a_job_title_resolves_to_one_open_job_or_a_question(
    db: asyncpg.Pool, tag: str
) -> None:
    async with db.acquire() as conn:
        engineer = await add_job(conn, f"Zorblax{tag} Backend Engineer")
        await add_job(conn, f"Zorblax{tag} Backend Lead")
        await add_job(conn, f"Zorblax{tag} Frontend Engineer", status="closed")

        exact = await resolve_job(conn, f"zorblax{tag}  BACKEND engineer")
        ambiguous = await resolve_job(conn, f"Zorblax{tag} Backend role")
        closed = await resolve_job(conn, f"Zorblax{tag} Frontend Engineer")
        unknown = await resolve_job(conn, f"Quux{tag} Wrangler")

    assert exact == JobMatch(
        job_id=engineer, title=f"Zorblax{tag} Backend Engineer", matched_by="title"
    )
    assert isinstance(ambiguous, JobClarification)
    assert {o.title for o in ambiguous.options} == {
        f"Zorblax{tag} Backend Engineer",
        f"Zorblax{tag} Backend Lead",
    }
    assert "matches 2 open jobs" in ambiguous.question
    assert isinstance(closed, JobClarification)
    assert closed.options[0].title == f"Zorblax{tag} Backend Engineer"  # shares two words
    assert isinstance(unknown, JobClarification)
    assert f'no open job matching "Quux{tag} Wrangler"' in unknown.question


# --- The documentation's example ------------------------------------------------------------

DOC_EXAMPLE = re.compile(r"<!-- example: ([\w.]+) -->\s*```csv\n(.*?)```", re.DOTALL)


@pytest.fixture
async def empty_database(prepared: Settings) -> AsyncIterator[str]:
    """A database of its own on the test server, since the example's rows have fixed addresses."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(prepared.database_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(prepared.database_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_the_documented_csv_examples_import_and_extract(
    empty_database: str, tmp_path: Path
) -> None:
    examples = dict(DOC_EXAMPLE.findall((REPO / "docs" / "campaign.md").read_text()))
    assert set(examples) == {"candidates.csv", "jobs.csv"}
    for name, text in examples.items():
        (tmp_path / name).write_text(text, encoding="utf-8")

    jobs = await campaign_cli(empty_database, "import-jobs", str(tmp_path / "jobs.csv"))
    first = await campaign_cli(
        empty_database, "import-candidates", str(tmp_path / "candidates.csv")
    )
    again = await campaign_cli(
        empty_database, "import-candidates", str(tmp_path / "candidates.csv")
    )

    assert jobs[:2] == (0, "imported 2, updated 0, rejected 0\n"), jobs  # stderr: migrations
    assert first == (0, "imported 3, updated 0, rejected 0\n", "")
    assert again == (0, "imported 0, updated 3, rejected 0\n", "")
    conn = await asyncpg.connect(empty_database)
    try:
        job = await resolve_job(conn, "payments backend role")
        assert isinstance(job, JobMatch)
        found = await extract_candidates(
            conn, Slots(skills=["python", "postgresql"]), job.job_id, uuid.uuid4(),
            window_days=90, limit=10,
        )  # fmt: skip
    finally:
        await conn.close()
    assert job.title == "Payments Backend Engineer"
    assert [(c.full_name, c.matched_skills) for c in found] == [
        ("Ada Lovelace", ["python", "postgresql"]),
        ("Jonas Weber", ["postgresql"]),  # 15 years
        ("Marta Nowak", ["python"]),  # 4 years
    ]
