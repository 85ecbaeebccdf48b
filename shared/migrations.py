"""Apply each service's numbered `.sql` migrations, once, even from several processes at once.

Migrations live in `services/<service>/migrations/NNNN_name.sql`. Every applied file is recorded in
`public.schema_migrations` with its checksum; a file edited after it was applied is an error, not a
silent skip. A transaction-scoped advisory lock serialises concurrent runners.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from shared.db import Connection

log = logging.getLogger(__name__)

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
SERVICES = ("gateway", "intent", "inference", "workflow", "campaign")
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5EC7E7A1  # any constant shared by every runner

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    service     text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, version)
)
"""


class MigrationError(RuntimeError):
    """A migration file is malformed, or was changed after it was applied."""


@dataclass(frozen=True)
class Migration:
    service: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(service: str, root: Path = SERVICES_DIR) -> list[Migration]:
    """The service's migrations in version order; a stray or duplicate file is an error."""
    folder = root / service / "migrations"
    if not folder.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_snake_case.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is used twice in {folder}")
        found[version] = Migration(service, version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(
    conn: Connection, services: tuple[str, ...] = SERVICES, root: Path = SERVICES_DIR
) -> list[Migration]:
    """Apply what is pending for `services`; return the migrations this call applied."""
    applied_now: list[Migration] = []
    for service in services:
        for migration in discover(service, root):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                await conn.execute(_BOOKKEEPING)
                row = await conn.fetchrow(
                    "SELECT checksum FROM public.schema_migrations WHERE service=$1 AND version=$2",
                    service,
                    migration.version,
                )
                if row is not None:
                    if row["checksum"] != migration.checksum:
                        raise MigrationError(
                            f"{service} migration {migration.version:04d}_{migration.name} was "
                            "edited after it was applied; add a new migration instead"
                        )
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO public.schema_migrations (service, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    service,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
                log.info("applied %s migration %04d_%s", service, migration.version, migration.name)
                applied_now.append(migration)
    return applied_now
