"""API keys: their format, hashing, scopes and lifecycle rules (pure), the PostgreSQL store with a
memory cache, and the Redis channel that tells every gateway worker at once that a key changed.

A key looks like `rk_<key_id>_<secret>`. Only sha256(secret) is stored: the secret has 256 bits of
entropy, so a slow password hash would add latency without adding safety. A key belongs to a user
and a team, may expire, and may be rotated: a new secret, with the previous one still accepted
until its grace period ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import asyncpg

from services.gateway import audit
from shared.contracts.common import DEFAULT_TEAM
from shared.db import Connection

log = logging.getLogger(__name__)

Scope = Literal["assistant", "workflows", "review", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
_PREFIX = "rk_"
_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UNKNOWN = "unknown or revoked API key"
# A key's last use is written at most this often (per key and worker; the UPDATE also skips a
# row another worker wrote within the interval), not once per request.
LAST_USED_EVERY_SECONDS = 60.0


class InvalidKey(Exception):
    """The presented key is malformed, unknown, revoked, expired or wrong."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and team a key belongs to, and what the key may do."""

    key_id: str
    user: str
    scopes: frozenset[str]
    team: str = DEFAULT_TEAM

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def team_filter(self) -> str | None:
        """Whose objects this key finds: its team's, or every team's for an admin key."""
        return None if "admin" in self.scopes else self.team


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{_PREFIX}{self.key_id}_{self.secret}"


def generate_key() -> NewKey:
    return NewKey(key_id=secrets.token_hex(6), secret=secrets.token_urlsafe(32))


def parse_token(token: str) -> tuple[str, str]:
    """Split a presented key into (key_id, secret)."""
    if not token.startswith(_PREFIX):
        raise InvalidKey("API keys start with 'rk_'")
    key_id, sep, secret = token[len(_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        raise InvalidKey("malformed API key")
    return key_id, secret


def key_id_of(key_id_or_token: str) -> str:
    """A key id, given the id or the whole token."""
    if key_id_or_token.startswith(_PREFIX):
        return parse_token(key_id_or_token)[0]
    return key_id_or_token


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {', '.join(SCOPES)}"
        )
    return scopes


def check_team(team: str) -> str:
    """A team name as stored: 1-64 letters, digits, '.', '_' or '-', starting with a letter or
    digit."""
    if not _TEAM.match(team):
        raise ValueError(
            f"team {team!r} is not a valid name: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return team


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class KeyRecord:
    """An active key's row, as far as checking a presented secret needs it."""

    principal: Principal
    secret_hash: bytes
    expires_at: datetime | None = None
    previous_secret_hash: bytes | None = None
    previous_valid_until: datetime | None = None

    def check(self, digest: bytes, now: datetime) -> Principal:
        """The key's principal if `digest` is its secret's (or, during a rotation's grace, the
        previous secret's) and it has not expired; else InvalidKey saying why."""
        if not hmac.compare_digest(self.secret_hash, digest):
            previous = self.previous_secret_hash
            if previous is None or not hmac.compare_digest(previous, digest):
                raise InvalidKey(UNKNOWN)
            until = self.previous_valid_until
            if until is None or now >= until:
                ended = f" at {when(until)}" if until is not None else ""
                raise InvalidKey(
                    f"this secret was replaced when the key was rotated; it stopped working{ended}"
                )
        if self.expires_at is not None and now >= self.expires_at:
            raise InvalidKey(f"this API key expired at {when(self.expires_at)}")
        return self.principal


def utcnow() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """Verifies keys against `gateway.api_keys`, trusting a key's row for `cache_seconds` so
    that a request costs no database round trip. Expiry and a rotation's grace are checked on
    every request against the cached row; a revocation or rotation reaches every worker through
    `KeyChanges` (`forget`), and while that channel is down nothing is cached (`distrust`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache_seconds: float,
        *,
        last_used_every: float = LAST_USED_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[KeyRecord, float]] = {}
        self._trusting = True
        self._generation = 0  # bumped on every change, so a lookup racing one is not cached
        self._last_used_every = last_used_every
        self._touched: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._now = now

    async def verify(self, token: str) -> Principal:
        key_id, secret = parse_token(token)
        return await self.verify_digest(key_id, hash_secret(secret))

    async def verify_digest(self, key_id: str, digest: bytes) -> Principal:
        """The key whose secret hashes to `digest`, as `verify` checks it (a web session keeps
        the digest, never the secret, and is checked again on every request)."""
        record = self._cached(key_id)
        if record is None:
            generation = self._generation
            record = await fetch_record(self._pool, key_id)
            if record is None:
                raise InvalidKey(UNKNOWN)
            if self._trusting and self._cache_seconds > 0 and generation == self._generation:
                self._cache[key_id] = (record, self._clock() + self._cache_seconds)
        principal = record.check(digest, self._now())
        self._touch(key_id)
        return principal

    def _cached(self, key_id: str) -> KeyRecord | None:
        cached = self._cache.get(key_id)
        if cached is None:
            return None
        if cached[1] <= self._clock():
            del self._cache[key_id]
            return None
        return cached[0]

    def forget(self, key_id: str) -> None:
        """The key changed (revoked or rotated): read it from the database next time."""
        self._generation += 1
        self._cache.pop(key_id, None)

    def distrust(self) -> None:
        """Changes may be missed from now on: drop the cache and stop caching."""
        self._generation += 1
        self._trusting = False
        self._cache.clear()

    def trust(self) -> None:
        """Changes are heard again: start caching afresh (what was missed is not cached)."""
        self._generation += 1
        self._trusting = True
        self._cache.clear()

    def _touch(self, key_id: str) -> None:
        at = self._clock()
        last = self._touched.get(key_id)
        if last is not None and at - last < self._last_used_every:
            return
        self._touched[key_id] = at
        task = asyncio.create_task(self._write_last_used(key_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_last_used(self, key_id: str) -> None:
        try:
            await self._pool.execute(
                "UPDATE gateway.api_keys SET last_used_at = now() WHERE key_id = $1"
                " AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
                key_id,
                self._last_used_every,
            )
        except (asyncpg.PostgresError, OSError):  # a request must not fail over bookkeeping
            log.warning("could not record the last use of key %s", key_id, exc_info=True)

    async def close(self) -> None:
        """Wait for the last-use writes in flight."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


@dataclass(frozen=True)
class KeyInfo:
    """A key as listings show it (never its secret)."""

    key_id: str
    user: str
    team: str
    scopes: tuple[str, ...]
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


_INFO_COLUMNS = (
    "key_id, user_name, team, scopes, description, created_at, expires_at, last_used_at,"
    " rotated_at, previous_valid_until, revoked_at"
)


def _info(row: Any) -> KeyInfo:
    return KeyInfo(
        row["key_id"], row["user_name"], row["team"], tuple(row["scopes"]), row["description"],
        row["created_at"], row["expires_at"], row["last_used_at"], row["rotated_at"],
        row["previous_valid_until"], row["revoked_at"],
    )  # fmt: skip


async def create_key(
    conn: Connection,
    user: str,
    scopes: frozenset[str],
    description: str | None = None,
    *,
    team: str = DEFAULT_TEAM,
    expires_in: timedelta | None = None,
    by: str | None = None,
) -> NewKey:
    """A new key; its creation is in the audit log (`by`: who made it), in one transaction."""
    if not user.strip():
        raise ValueError("a key belongs to a named user: --user must not be empty")
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("a key's lifetime must be positive")
    key = generate_key()
    team = check_team(team.strip())
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO gateway.api_keys"
            " (key_id, user_name, scopes, secret_hash, description, team, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)",
            key.key_id,
            user.strip(),
            sorted(scopes),
            hash_secret(key.secret),
            description,
            team,
            expires_in,
        )
        detail: dict[str, Any] = {
            "user": user.strip(),
            "scopes": sorted(scopes),
            "description": description,
        }
        if expires_in is not None:
            detail["expires_in_seconds"] = expires_in.total_seconds()
        await audit.record_key_change(
            conn, "key.created", key.key_id, actor=by, team=team, detail=detail
        )
    return key


async def rotate_key(
    conn: Connection, key_id: str, grace: timedelta, *, by: str | None = None
) -> tuple[NewKey, datetime] | None:
    """A new secret for an active key, the current one still accepted for `grace` (a previous
    rotation's secret stops at once): the new key and when the old secret stops working. None
    if no active, unexpired key has that id."""
    if grace < timedelta(0):
        raise ValueError("a rotation's grace period cannot be negative")
    key = NewKey(key_id_of(key_id), secrets.token_urlsafe(32))
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE gateway.api_keys SET previous_secret_hash = secret_hash,"
            " previous_valid_until = now() + $2::interval, secret_hash = $3, rotated_at = now()"
            " WHERE key_id = $1 AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > now())"
            " RETURNING previous_valid_until, team",
            key.key_id,
            grace,
            hash_secret(key.secret),
        )
        if row is None:
            return None
        until: datetime = row["previous_valid_until"]
        await audit.record_key_change(
            conn, "key.rotated", key.key_id, actor=by, team=row["team"],
            detail={"old_secret_valid_until": until.isoformat()},
        )  # fmt: skip
    return key, until


async def revoke_key(conn: Connection, key_id: str, *, by: str | None = None) -> bool:
    """Revoke a key by id (or by the whole token); False if no active key has that id. A
    revocation is in the audit log (`by`: who revoked it), in one transaction."""
    async with conn.transaction():
        team: str | None = await conn.fetchval(
            "UPDATE gateway.api_keys SET revoked_at = now()"
            " WHERE key_id = $1 AND revoked_at IS NULL RETURNING team",
            key_id_of(key_id),
        )
        if team is None:
            return False
        await audit.record_key_change(
            conn, "key.revoked", key_id_of(key_id), actor=by, team=team, detail={}
        )
    return True


async def list_keys(db: asyncpg.Pool | Connection, team: str | None = None) -> list[KeyInfo]:
    rows = await db.fetch(
        f"SELECT {_INFO_COLUMNS} FROM gateway.api_keys"  # noqa: S608 - a constant column list
        " WHERE $1::text IS NULL OR team = $1 ORDER BY created_at, key_id",
        team,
    )
    return [_info(row) for row in rows]


async def get_key(db: asyncpg.Pool | Connection, key_id: str) -> KeyInfo | None:
    row = await db.fetchrow(
        f"SELECT {_INFO_COLUMNS} FROM gateway.api_keys WHERE key_id = $1",  # noqa: S608
        key_id_of(key_id),
    )
    return None if row is None else _info(row)


async def fetch_record(db: asyncpg.Pool | Connection, key_id: str) -> KeyRecord | None:
    """The active (unrevoked) key `key_id`, or None."""
    row = await db.fetchrow(
        "SELECT user_name, team, scopes, secret_hash, expires_at, previous_secret_hash,"
        " previous_valid_until FROM gateway.api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    if row is None:
        return None
    previous = row["previous_secret_hash"]
    return KeyRecord(
        Principal(key_id, row["user_name"], frozenset(row["scopes"]), row["team"]),
        bytes(row["secret_hash"]),
        row["expires_at"],
        None if previous is None else bytes(previous),
        row["previous_valid_until"],
    )


async def lookup(db: asyncpg.Pool | Connection, key_id: str, digest: bytes) -> Principal | None:
    """The active key `key_id` if `digest` is a working secret's, else None."""
    record = await fetch_record(db, key_id)
    if record is None:
        return None
    try:
        return record.check(digest, utcnow())
    except InvalidKey:
        return None


async def verify_token(conn: Connection, token: str) -> Principal | None:
    """Check a token without the cache (for tools such as `make run`'s development key)."""
    try:
        key_id, secret = parse_token(token)
    except InvalidKey:
        return None
    return await lookup(conn, key_id, hash_secret(secret))
