"""API keys: format, scopes, teams, expiry and rotation rules, and the verification cache (no
database round trip per request; a change heard on the channel drops a key at once; last use
written at most once a minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.api_keys import (
    InvalidKey,
    KeyRecord,
    KeyStore,
    Principal,
    check_team,
    generate_key,
    hash_secret,
    key_id_of,
    parse_scopes,
    parse_token,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class CountingPool:
    """Stands in for asyncpg's pool: one stored key, a count of queries, the last-use writes."""

    def __init__(self, key_id: str, secret: str, scopes: list[str]) -> None:
        self.row: dict[str, Any] = {
            "user_name": "ada", "team": "berlin", "scopes": scopes,
            "secret_hash": hash_secret(secret), "expires_at": None,
            "previous_secret_hash": None, "previous_valid_until": None,
        }  # fmt: skip
        self.key_id = key_id
        self.queries = 0
        self.revoked = False
        self.last_used_writes: list[str] = []

    async def fetchrow(self, sql: str, key_id: str) -> dict[str, Any] | None:
        self.queries += 1
        return self.row if key_id == self.key_id and not self.revoked else None

    async def execute(self, sql: str, key_id: str, every: float) -> str:
        assert "last_used_at" in sql
        self.last_used_writes.append(key_id)
        return "UPDATE 1"


class Clock:
    """A monotonic clock and a wall clock that the test moves."""

    def __init__(self) -> None:
        self.seconds = 1_000.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds - 1_000.0)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


def store_with(pool: CountingPool, clock: Clock, cache_seconds: float = 30) -> KeyStore:
    return KeyStore(
        pool,  # type: ignore[arg-type]
        cache_seconds,
        clock=clock.monotonic,
        now=clock.now,
    )


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
    admin = Principal("k", "ada", frozenset({"admin"}), "berlin")
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


def test_key_id_of_takes_an_id_or_a_whole_token() -> None:
    key = generate_key()
    assert key_id_of(key.token) == key.key_id
    assert key_id_of(key.key_id) == key.key_id


@pytest.mark.parametrize("team", ["berlin", "team-1", "a.b_c", "x" * 64])
def test_team_names(team: str) -> None:
    assert check_team(team) == team


@pytest.mark.parametrize("team", ["", " ", "-lead", "a b", "x" * 65, "ber/lin"])
def test_bad_team_names_are_refused(team: str) -> None:
    with pytest.raises(ValueError, match="not a valid name"):
        check_team(team)


def record(**changes: Any) -> KeyRecord:
    fields: dict[str, Any] = {
        "principal": Principal("k", "ada", frozenset({"review"}), "berlin"),
        "secret_hash": hash_secret("new"),
        **changes,
    }
    return KeyRecord(**fields)


def test_a_record_admits_its_secret_until_it_expires_and_says_when() -> None:
    key = record(expires_at=T0)
    assert key.check(hash_secret("new"), T0 - timedelta(seconds=1)).team == "berlin"
    with pytest.raises(InvalidKey, match="expired at 2026-12-04 12:00:00 UTC"):
        key.check(hash_secret("new"), T0)
    with pytest.raises(InvalidKey, match="unknown or revoked"):  # says nothing to a wrong secret
        key.check(hash_secret("wrong"), T0)


def test_a_rotated_keys_old_secret_works_until_the_grace_ends() -> None:
    key = record(previous_secret_hash=hash_secret("old"), previous_valid_until=T0)
    before = T0 - timedelta(minutes=1)
    assert key.check(hash_secret("old"), before).user == "ada"
    assert key.check(hash_secret("new"), before).user == "ada"
    with pytest.raises(InvalidKey, match="rotated; it stopped working at 2026-12-04 12:00:00"):
        key.check(hash_secret("old"), T0)
    assert key.check(hash_secret("new"), T0 + timedelta(days=1)).user == "ada"
    with pytest.raises(InvalidKey, match="unknown or revoked"):
        key.check(hash_secret("other"), before)


def test_an_expired_key_refuses_its_old_secret_too() -> None:
    key = record(
        previous_secret_hash=hash_secret("old"),
        previous_valid_until=T0 + timedelta(hours=1),
        expires_at=T0,
    )
    with pytest.raises(InvalidKey, match="expired"):
        key.check(hash_secret("old"), T0)


async def test_the_cache_checks_expiry_on_every_request() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    clock = Clock()
    pool.row["expires_at"] = clock.now() + timedelta(seconds=5)
    store = store_with(pool, clock, cache_seconds=60)
    assert (await store.verify(key.token)).team == "berlin"
    clock.advance(5)
    with pytest.raises(InvalidKey, match="expired at"):
        await store.verify(key.token)
    assert pool.queries == 1  # refused from the cache: the cached row still knows its expiry


async def test_a_forgotten_key_is_read_again_at_once() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    store = store_with(pool, Clock(), cache_seconds=60)
    await store.verify(key.token)
    pool.revoked = True
    await store.verify(key.token)  # still cached: nobody said it changed
    store.forget(key.key_id)
    with pytest.raises(InvalidKey, match="unknown or revoked"):
        await store.verify(key.token)


async def test_a_distrusting_store_caches_nothing_until_it_trusts_again() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    store = store_with(pool, Clock(), cache_seconds=60)
    store.distrust()
    for _ in range(3):
        await store.verify(key.token)
    assert pool.queries == 3
    store.trust()
    for _ in range(3):
        await store.verify(key.token)
    assert pool.queries == 4


async def test_a_change_during_a_lookup_is_not_cached() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    store = store_with(pool, Clock(), cache_seconds=60)
    fetch = pool.fetchrow

    async def revoked_meanwhile(sql: str, key_id: str) -> dict[str, Any] | None:
        row = await fetch(sql, key_id)  # read before the revocation commits...
        store.forget(key_id)  # ...whose announcement arrives before the row is cached
        return row

    pool.fetchrow = revoked_meanwhile  # type: ignore[method-assign]
    await store.verify(key.token)
    pool.fetchrow = fetch  # type: ignore[method-assign]
    pool.revoked = True
    with pytest.raises(InvalidKey):
        await store.verify(key.token)


async def test_last_use_is_written_at_most_once_a_minute_per_key() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    clock = Clock()
    store = store_with(pool, clock, cache_seconds=60)
    for _ in range(50):
        await store.verify(key.token)
    clock.advance(59)
    await store.verify(key.token)
    await store.close()
    assert pool.last_used_writes == [key.key_id]
    clock.advance(1)
    await store.verify(key.token)
    await store.close()
    assert pool.last_used_writes == [key.key_id] * 2


async def test_a_refused_key_is_not_marked_used() -> None:
    key = generate_key()
    pool = CountingPool(key.key_id, key.secret, ["assistant"])
    store = store_with(pool, Clock())
    with pytest.raises(InvalidKey):
        await store.verify(f"rk_{key.key_id}_{'x' * 43}")
    await store.close()
    assert pool.last_used_writes == []
