"""The service schemas and the demo seed on a real PostgreSQL, one throwaway database per test."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from services.campaign.seed import SeedResult, seed
from shared.db import with_database
from shared.migrations import SERVICES, SERVICES_DIR, MigrationError, discover, migrate
from shared.settings import Settings
from tests.support.campaign_rows import add_campaign, add_candidate, add_job

pytestmark = pytest.mark.integration

OUR_SERVICES = ("intent", "inference", "workflow", "campaign")
SCHEMA_DUMP = """
SELECT table_schema, table_name, column_name, ordinal_position, data_type, is_nullable,
       column_default
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY table_schema, table_name, ordinal_position
"""
INDEX_DUMP = """
SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY schemaname, indexname
"""
SENIOR_PYTHON_BERLIN = """
SELECT count(*) FROM campaign.candidates
WHERE seniority = 'senior' AND skills @> ARRAY['python'] AND lower(city) = lower('Berlin')
"""


@asynccontextmanager
async def _throwaway_database(settings: Settings) -> AsyncIterator[str]:
    """Create an empty database on the test server, yield its DSN, then drop it."""
    server = settings.database_url
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def fresh_database(prepared: Settings) -> AsyncIterator[str]:
    async with _throwaway_database(prepared) as dsn:
        yield dsn


@pytest.fixture
async def conn(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(fresh_database)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def migrated(conn: asyncpg.Connection) -> asyncpg.Connection:
    await migrate(conn)
    return conn


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A services folder holding copies of our migrations, safe to edit."""
    root = tmp_path / "services"
    for service in OUR_SERVICES:
        shutil.copytree(SERVICES_DIR / service / "migrations", root / service / "migrations")
    return root


async def _dump(connection: asyncpg.Connection) -> list[tuple[object, ...]]:
    rows = await connection.fetch(SCHEMA_DUMP) + await connection.fetch(INDEX_DUMP)
    return [tuple(row) for row in rows]


async def _seeded_fingerprint(dsn: str, random_seed: int) -> tuple[str, str]:
    connection = await asyncpg.connect(dsn)
    try:
        await migrate(connection, OUR_SERVICES)
        await seed(connection, random_seed=random_seed)
        return await _fingerprint(connection)
    finally:
        await connection.close()


async def _fingerprint(connection: asyncpg.Connection) -> tuple[str, str]:
    candidates = await connection.fetchval(
        "SELECT md5(string_agg(c::text, E'\\n' ORDER BY candidate_id)) FROM campaign.candidates c"
    )
    jobs = await connection.fetchval(
        "SELECT md5(string_agg(j::text, E'\\n' ORDER BY job_id)) FROM campaign.jobs j"
    )
    return str(candidates), str(jobs)


async def test_migrations_applied_twice_change_nothing(conn: asyncpg.Connection) -> None:
    first = await migrate(conn)
    assert {m.service for m in first} >= set(OUR_SERVICES)
    before = await _dump(conn)

    assert await migrate(conn) == []
    assert await _dump(conn) == before
    schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    assert schemas >= set(OUR_SERVICES)


async def test_concurrent_migrations_apply_each_file_once(fresh_database: str) -> None:
    connections = [await asyncpg.connect(fresh_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in connections))
        recorded = await connections[0].fetch(
            "SELECT service, version FROM public.schema_migrations"
        )
    finally:
        await asyncio.gather(*(c.close() for c in connections))

    expected = sorted((m.service, m.version) for s in SERVICES for m in discover(s))
    applied = sorted((m.service, m.version) for result in results for m in result)
    assert applied == expected
    assert sorted((r["service"], r["version"]) for r in recorded) == expected


async def test_a_migration_edited_after_it_was_applied_is_refused(
    conn: asyncpg.Connection, migrations_copy: Path
) -> None:
    await migrate(conn, OUR_SERVICES, root=migrations_copy)
    edited = migrations_copy / "campaign" / "migrations" / "0001_init.sql"
    edited.write_text(edited.read_text() + "\n-- changed after it was applied\n")

    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrate(conn, OUR_SERVICES, root=migrations_copy)


async def test_seeding_twice_loads_once(migrated: asyncpg.Connection) -> None:
    first = await seed(migrated)
    second = await seed(migrated)

    assert first.candidates == 10_000
    assert await migrated.fetchval("SELECT count(*) FROM campaign.jobs WHERE status='open'") >= 30
    assert second == SeedResult(candidates=0, jobs=0, skipped=True)
    assert await migrated.fetchval("SELECT count(*) FROM campaign.candidates") == 10_000
    assert await migrated.fetchval("SELECT count(*) FROM campaign.jobs") == first.jobs


async def test_forced_reseed_replaces_only_demo_rows(migrated: asyncpg.Connection) -> None:
    await seed(migrated, candidates=1_000)
    await add_candidate(
        migrated, "Grace Hopper", email="grace.hopper@example.com", source="csv-import"
    )

    result = await seed(migrated, candidates=500, force=True)

    assert result.candidates == 500
    rows = await migrated.fetch("SELECT source, count(*) FROM campaign.candidates GROUP BY 1")
    counts = {row["source"]: row["count"] for row in rows}
    assert counts == {"demo-seed": 500, "csv-import": 1}


async def test_the_same_seed_gives_identical_rows(fresh_database: str, prepared: Settings) -> None:
    async with _throwaway_database(prepared) as other:
        first = await _seeded_fingerprint(fresh_database, random_seed=7)
        second = await _seeded_fingerprint(other, random_seed=7)
        connection = await asyncpg.connect(other)
        try:
            await seed(connection, random_seed=8, force=True)
            different = await _fingerprint(connection)
        finally:
            await connection.close()

    assert first == second
    assert different[0] != first[0]
    assert different[1] == first[1]  # jobs do not depend on the seed


async def test_senior_python_developers_in_berlin_are_a_few_dozen(
    migrated: asyncpg.Connection,
) -> None:
    await seed(migrated)

    assert await migrated.fetchval(SENIOR_PYTHON_BERLIN) >= 20


async def test_candidate_email_is_unique_whatever_its_case(migrated: asyncpg.Connection) -> None:
    insert = "INSERT INTO campaign.candidates (full_name, email, source) VALUES ($1, $2, 'test')"
    await migrated.execute(insert, "Ada Lovelace", "Ada.Lovelace@Example.com")

    with pytest.raises(asyncpg.UniqueViolationError):
        await migrated.execute(insert, "Ada Lovelace", "ada.lovelace@EXAMPLE.com")


async def test_email_status_must_be_a_known_one(migrated: asyncpg.Connection) -> None:
    job_id = await add_job(migrated, "Data Engineer")
    candidate_id = await add_candidate(migrated, "Alan Turing", email="alan@example.org")
    campaign_id = await add_campaign(migrated, job_id)
    insert = (  # by hand: the status is what the schema is asked to refuse
        "INSERT INTO campaign.emails (campaign_id, job_id, candidate_id, to_address, subject, body,"
        " status) VALUES ($1, $2, $3, 'alan@example.org', 'Hello', 'A role for you', $4)"
    )

    with pytest.raises(asyncpg.CheckViolationError):
        await migrated.execute(insert, campaign_id, job_id, candidate_id, "queued")
    await migrated.execute(insert, campaign_id, job_id, candidate_id, "drafted")
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated.execute("UPDATE campaign.emails SET status = 'delivered'")


async def test_one_workflow_run_per_intent(migrated: asyncpg.Connection) -> None:
    insert = (
        "INSERT INTO workflow.runs (workflow_type, definition_version, intent_id)"
        " VALUES ('email_campaign', 1, $1)"
    )
    intent_id = uuid.uuid4()
    await migrated.execute(insert, intent_id)

    with pytest.raises(asyncpg.UniqueViolationError):
        await migrated.execute(insert, intent_id)
