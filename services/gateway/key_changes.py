"""Revocations and rotations reach every gateway worker at once: they are published on a Redis
channel, and each worker follows it (`KeyChanges`) and drops the key from its `KeyStore` cache.
While a worker is not subscribed, its store caches nothing and checks every key in PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway.api_keys import KeyStore, key_id_of

log = logging.getLogger(__name__)

# Every gateway worker subscribes; a key id published here is dropped from its cache at once.
CHANGES_CHANNEL = "gateway:api-keys:changed"


async def announce_change(redis: Redis, key_id: str) -> int:
    """Tell every gateway worker that key `key_id` was revoked or rotated; how many heard it."""
    return int(await redis.publish(CHANGES_CHANNEL, key_id_of(key_id)))


class KeyChanges:
    """Follows CHANGES_CHANNEL for a KeyStore in a background task: each key id heard is
    forgotten at once. The store caches only while subscribed; a lost connection is retried
    with backoff, and the cache starts afresh once subscribed again (a change published in
    between is not missed)."""

    def __init__(self, redis: Redis, store: KeyStore, retry_seconds: float = 0.5) -> None:
        self._redis = redis
        self._store = store
        self._retry_seconds = retry_seconds
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float) -> None:
        """Start following, waiting up to `timeout` s for the subscription (the store does not
        cache until then, so starting without it is safe, only slower)."""
        self._store.distrust()
        self._task = asyncio.create_task(self._follow(), name="api-key-changes")
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            log.warning(
                "not subscribed to %s yet: keys are checked in the database", CHANGES_CHANNEL
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        delay = self._retry_seconds
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANGES_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._store.trust()
                        self._subscribed.set()
                        delay = self._retry_seconds
                    elif message["type"] == "message":
                        data = message["data"]
                        self._store.forget(data.decode() if isinstance(data, bytes) else str(data))
            except Exception as exc:  # Redis down, or a bug: never cache without hearing changes
                self._store.distrust()
                self._subscribed.clear()
                log.warning(
                    "lost %s (%s: %s); keys are checked in the database until it is back",
                    CHANGES_CHANNEL,
                    type(exc).__name__,
                    exc,
                    exc_info=not isinstance(exc, RedisError | OSError),
                )
            finally:
                with suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
