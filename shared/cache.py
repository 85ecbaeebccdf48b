"""The Redis client, created in a startup hook, failing fast with a message naming REDIS_URL."""

from __future__ import annotations

import redis.asyncio as redis
from redis.exceptions import RedisError

from shared.errors import DependencyUnavailable
from shared.settings import Settings


async def create_redis(settings: Settings) -> redis.Redis:
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.startup_timeout_seconds,
        socket_timeout=5,
        health_check_interval=30,
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise DependencyUnavailable(
            "REDIS_URL", settings.redis_url, f"{type(exc).__name__}: {exc}"
        ) from exc
    return client
