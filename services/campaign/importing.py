"""Import candidates and jobs from CSV files (`python -m services.campaign import-candidates FILE`).

Every row is validated on its own: bad rows are reported with their line and column, and the good
ones are stored in one transaction (COPY into a temporary table, then set-based UPDATE and INSERT),
so a 10,000-row file takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.campaign.domain.importing import (
    CANDIDATES,
    JOBS,
    ImportFileError,
    ImportResult,
    Table,
    parse_csv,
)
from services.campaign.repository.imports import store
from shared.db import Connection, create_pool
from shared.migrations import migrate
from shared.settings import Settings

MAX_REPORTED_ERRORS = 50


async def import_csv(conn: Connection, path: Path, table: Table) -> ImportResult:
    """Validate and store one file; raises `ImportFileError` when the file cannot be used."""
    return await store(conn, parse_csv(path, table), table)


# --- Command line ----------------------------------------------------------------------------


def format_report(result: ImportResult, max_errors: int = MAX_REPORTED_ERRORS) -> str:
    """The summary line, then one line per row error and per row skipped (the first `max_errors`
    of each)."""
    lines = [f"imported {result.imported}, updated {result.updated}, rejected {result.rejected}"]
    if result.skipped:
        lines[0] += f", skipped {len(result.skipped)}"
    if result.ignored_columns:
        lines.append(f"ignored unknown column(s): {', '.join(result.ignored_columns)}")
    for rows in (result.errors, result.skipped):
        lines += [str(row) for row in rows[:max_errors]]
        if len(rows) > max_errors:
            lines.append(f"... and {len(rows) - max_errors} more")
    return "\n".join(lines)


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a UTF-8 CSV file, header first")


async def import_candidates_command(settings: Settings, args: argparse.Namespace) -> int:
    """`import-candidates FILE`: exit 0 if anything was stored, 1 if every row was rejected,
    2 if the file cannot be used at all."""
    return await _import_command(settings, args.file, CANDIDATES)


async def import_jobs_command(settings: Settings, args: argparse.Namespace) -> int:
    """`import-jobs FILE`: exit codes as for candidates."""
    return await _import_command(settings, args.file, JOBS)


async def _import_command(settings: Settings, path: Path, table: Table) -> int:
    try:
        parsed = parse_csv(path, table)
    except ImportFileError as exc:
        print(f"campaign: error: {exc}", file=sys.stderr)
        return 2
    pool = await create_pool(settings, max_size=1)  # failing, it names DATABASE_URL (exit 2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, ("campaign",))
            result = await store(conn, parsed, table)
    finally:
        await pool.close()
    print(format_report(result))
    return result.exit_code
