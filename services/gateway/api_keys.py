"""API keys: their format, hashing and scopes (pure), and the PostgreSQL store with a memory cache.

A key looks like `rk_<key_id>_<secret>`. Only sha256(secret) is stored: the secret has 256 bits of
entropy, so a slow password hash would add latency without adding safety.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal, get_args

import asyncpg

from shared.db import Connection

Scope = Literal["assistant", "workflows", "review", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
_PREFIX = "rk_"


class InvalidKey(Exception):
    """The presented key is malformed, unknown, revoked or wrong."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user a key belongs to, and what the key may do."""

    key_id: str
    user: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


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


class KeyStore:
    """Verifies keys against `gateway.api_keys`, trusting a verified key for `cache_seconds`
    so that a request costs no database round trip; a revocation therefore takes effect within
    that time."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[bytes, Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        key_id, secret = parse_token(token)
        return await self.verify_digest(key_id, hash_secret(secret))

    async def verify_digest(self, key_id: str, digest: bytes) -> Principal:
        """The key whose secret hashes to `digest`, as `verify` checks it (a web session keeps
        the digest, never the secret, and is checked again on every request)."""
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and cached[2] > now:
            if not hmac.compare_digest(cached[0], digest):
                raise InvalidKey("unknown or revoked API key")
            return cached[1]
        principal = await lookup(self._pool, key_id, digest)
        if principal is None:
            self._cache.pop(key_id, None)
            raise InvalidKey("unknown or revoked API key")
        self._cache[key_id] = (digest, principal, now + self._cache_seconds)
        return principal


async def create_key(
    conn: Connection, user: str, scopes: frozenset[str], description: str | None = None
) -> NewKey:
    if not user.strip():
        raise ValueError("a key belongs to a named user: --user must not be empty")
    key = generate_key()
    await conn.execute(
        "INSERT INTO gateway.api_keys (key_id, user_name, scopes, secret_hash, description)"
        " VALUES ($1, $2, $3, $4, $5)",
        key.key_id,
        user.strip(),
        sorted(scopes),
        hash_secret(key.secret),
        description,
    )
    return key


async def revoke_key(conn: Connection, key_id: str) -> bool:
    """Revoke a key by id (or by the whole token); False if no active key has that id."""
    if key_id.startswith(_PREFIX):
        key_id = parse_token(key_id)[0]
    status = await conn.execute(
        "UPDATE gateway.api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    return bool(status == "UPDATE 1")


async def lookup(db: asyncpg.Pool | Connection, key_id: str, digest: bytes) -> Principal | None:
    """The active key `key_id` if its stored hash matches `digest`, else None."""
    row = await db.fetchrow(
        "SELECT user_name, scopes, secret_hash FROM gateway.api_keys"
        " WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), digest):
        return None
    return Principal(key_id, row["user_name"], frozenset(row["scopes"]))


async def verify_token(conn: Connection, token: str) -> Principal | None:
    """Check a token without the cache (for tools such as `make run`'s development key)."""
    try:
        key_id, secret = parse_token(token)
    except InvalidKey:
        return None
    return await lookup(conn, key_id, hash_secret(secret))
