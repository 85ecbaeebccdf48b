"""API keys: format, scopes, and the verification cache (no database round trip per request)."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.api_keys import (
    InvalidKey,
    KeyStore,
    Principal,
    generate_key,
    hash_secret,
    parse_scopes,
    parse_token,
)


class CountingPool:
    """Stands in for asyncpg's pool: one stored key, and a count of queries."""

    def __init__(self, key_id: str, secret: str, scopes: list[str]) -> None:
        self.row = {"user_name": "ada", "scopes": scopes, "secret_hash": hash_secret(secret)}
        self.key_id = key_id
        self.queries = 0
        self.revoked = False

    async def fetchrow(self, sql: str, key_id: str) -> dict[str, Any] | None:
        self.queries += 1
        return self.row if key_id == self.key_id and not self.revoked else None


def test_generated_key_round_trips() -> None:
    key = generate_key()
    assert key.token.startswith("rk_")
    assert parse_token(key.token) == (key.key_id, key.secret)


@pytest.mark.parametrize(
    "token", ["", "abc", "rk_", "rk_short_secret", "rk_0123456789ab_", "Bearer x"]
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidKey):
        parse_token(token)


def test_scopes_parse_and_unknown_ones_are_named() -> None:
    assert parse_scopes("assistant, review") == {"assistant", "review"}
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes("assistant,superuser")
    with pytest.raises(ValueError, match="none given"):
        parse_scopes(" , ")


def test_admin_implies_every_scope() -> None:
    admin = Principal("k", "ada", frozenset({"admin"}))
    reviewer = Principal("k", "rita", frozenset({"review"}))
    assert admin.allows("review")
    assert reviewer.allows("review")
    assert not reviewer.allows("workflows")


async def test_verified_key_is_cached_and_wrong_secret_is_refused_from_cache() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    store = KeyStore(pool, cache_seconds=60)  # type: ignore[arg-type]
    for _ in range(100):
        principal = await store.verify(key.token)
    assert principal.user == "ada"
    assert pool.queries == 1
    with pytest.raises(InvalidKey):
        await store.verify(f"rk_{key.key_id}_{'x' * 43}")
    assert pool.queries == 1


async def test_without_cache_a_revocation_applies_at_once() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    store = KeyStore(pool, cache_seconds=0)  # type: ignore[arg-type]
    await store.verify(key.token)
    pool.revoked = True
    with pytest.raises(InvalidKey, match="unknown or revoked"):
        await store.verify(key.token)
