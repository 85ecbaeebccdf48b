"""The asyncpg connection pool, created in a service's startup hook and closed on shutdown."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.errors import DependencyUnavailable
from shared.settings import Settings

# A plain connection or one borrowed from a pool: repositories accept either.
Connection = asyncpg.Connection | PoolConnectionProxy
# A connection, or the pool itself when each statement may commit on its own.
Database = Connection | asyncpg.Pool


def with_database(url: str, name: str) -> str:
    """The same PostgreSQL URL naming database `name` (a `?host=/socket/dir` query is kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_of(url: str) -> str:
    """The database a PostgreSQL URL names."""
    return urlsplit(url).path.lstrip("/")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset when a connection returns to the pool: no code sets session state (locks
    are transaction-scoped, LISTEN uses its own connection), and asyncpg's default reset costs a
    round trip on every release. An open transaction is still rolled back by asyncpg itself."""


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool, failing fast with a message that names DATABASE_URL when it cannot connect."""
    try:
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=min_size,
            max_size=max_size,
            timeout=settings.startup_timeout_seconds,
            command_timeout=30,
            reset=_keep_session,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DependencyUnavailable(
            "DATABASE_URL", settings.database_url, f"{type(exc).__name__}: {exc}"
        ) from exc
    assert pool is not None
    return pool
