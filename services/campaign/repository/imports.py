"""Storing an import's good rows in one transaction: COPY into a temporary table, match rows to
existing ones, then set-based UPDATE and INSERT. Table and column names come from `Table` and the
row models, never from the file, so the SQL built with them is safe (hence the S608 exemptions)."""

from __future__ import annotations

from collections.abc import Sequence

from services.campaign.domain.importing import (
    CANDIDATES,
    SOURCE,
    ImportResult,
    ParsedFile,
    RowError,
    RowSkipped,
    Table,
)
from shared.db import Connection

_LOCK_KEY = 0x1A2B_CA3F  # one import at a time, so matching rows to existing ones cannot race


async def store(conn: Connection, parsed: ParsedFile, table: Table) -> ImportResult:
    """Insert new rows and update matched ones in one transaction; rows that clash with an
    existing one (an email owned by another candidate) are reported, not stored, and rows with
    an erased address are skipped (reported as such)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await _stage(conn, parsed, table)
        skipped = await _skip_erased(conn) if table is CANDIDATES else []
        await _match_existing(conn, table)
        clashes = await conn.fetch(
            "SELECT line, conflict_on, conflict FROM _import WHERE conflict IS NOT NULL"
        )
        updated = await _update(conn, table, parsed.columns)
        imported = await _insert(conn, table)
    errors = parsed.errors + [RowError(r["line"], r["conflict_on"], r["conflict"]) for r in clashes]
    errors.sort(key=lambda e: e.line)
    return ImportResult(imported, updated, errors, parsed.ignored_columns, skipped)


async def _skip_erased(conn: Connection) -> list[RowSkipped]:
    """Drop the staged rows whose address was erased (its hash is kept, migration 0009): those
    people are never stored, so never contacted, again."""
    rows = await conn.fetch(
        "DELETE FROM _import s USING campaign.erased_addresses x"
        " WHERE x.address_hash = campaign.address_hash(s.email) RETURNING s.line"
    )
    return [RowSkipped(row["line"], "erased") for row in sorted(rows, key=lambda r: r["line"])]


async def _stage(conn: Connection, parsed: ParsedFile, table: Table) -> None:
    columns = ", ".join(table.columns)
    await conn.execute(
        "CREATE TEMP TABLE _import ON COMMIT DROP AS SELECT 0 AS line, NULL::uuid AS target,"  # noqa: S608
        f" NULL::text AS conflict_on, NULL::text AS conflict, {columns}"
        f" FROM campaign.{table.name} WITH NO DATA"
    )
    records = [(line, *(getattr(row, c) for c in table.columns)) for line, row in parsed.rows]
    await conn.copy_records_to_table("_import", records=records, columns=("line", *table.columns))
    await conn.execute("ANALYZE _import")  # temporary tables get no statistics otherwise


async def _match_existing(conn: Connection, table: Table) -> None:
    """Point each staged row at the row it updates: by external_ref, else (candidates) by email,
    unless that would hand an address to a candidate with another external_ref."""
    await conn.execute(
        f"UPDATE _import s SET target = t.{table.id_column} FROM campaign.{table.name} t"  # noqa: S608
        " WHERE s.external_ref IS NOT NULL AND t.external_ref = s.external_ref"
    )
    if table is not CANDIDATES:
        return
    await conn.execute(
        "UPDATE _import s SET target = c.candidate_id FROM campaign.candidates c"
        " WHERE s.target IS NULL AND lower(c.email) = lower(s.email)"
        " AND (s.external_ref IS NULL OR c.external_ref IS NULL)"
    )
    await conn.execute(
        "UPDATE _import s SET conflict_on = 'email', conflict = 'belongs to another candidate'"
        " || coalesce(' (external_ref ' || c.external_ref || ')', '')"
        " FROM campaign.candidates c"
        " WHERE lower(c.email) = lower(s.email) AND c.candidate_id IS DISTINCT FROM s.target"
    )
    # Without an external_ref a row matches by email, so it can land on a row another line
    # matched by external_ref.
    await conn.execute(
        "UPDATE _import s SET conflict_on = 'email',"
        " conflict = 'is the same candidate as line ' || f.line"
        " FROM (SELECT target, min(line) AS line FROM _import"
        "       WHERE target IS NOT NULL AND conflict IS NULL GROUP BY target) f"
        " WHERE s.target = f.target AND s.line > f.line AND s.conflict IS NULL"
    )


async def _update(conn: Connection, table: Table, header: Sequence[str]) -> int:
    """Update the columns the file has; the others keep their values. An external_ref is never
    cleared by an empty cell: it is how the next import finds the row."""
    sets = [
        "external_ref = coalesce(s.external_ref, t.external_ref)"
        if c == "external_ref"
        else f"{c} = s.{c}"
        for c in header
    ]
    status = await conn.execute(
        f"UPDATE campaign.{table.name} t SET {', '.join(sets)},"  # noqa: S608
        f" source = '{SOURCE}', updated_at = now()"
        f" FROM _import s WHERE t.{table.id_column} = s.target AND s.conflict IS NULL"
    )
    return int(status.split()[-1])


async def _insert(conn: Connection, table: Table) -> int:
    columns = ", ".join(table.columns)
    status = await conn.execute(
        f"INSERT INTO campaign.{table.name} ({columns}, source)"  # noqa: S608
        f" SELECT {columns}, '{SOURCE}' FROM _import"
        " WHERE target IS NULL AND conflict IS NULL ORDER BY line"
    )
    return int(status.split()[-1])
