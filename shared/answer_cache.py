"""The Redis cache of model answers, with single flight: of concurrent identical misses, across
processes, one calls the model and the others wait for its answer."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as redis

from shared.contracts.inference import CachedAnswer
from shared.metrics import ANSWER_CACHE_LOOKUPS

_LOCK_SUFFIX = ":lock"
_HITS = ANSWER_CACHE_LOOKUPS.labels("hit")
_MISSES = ANSWER_CACHE_LOOKUPS.labels("miss")
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class AnswerCache:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    async def get(self, key: str) -> CachedAnswer | None:
        """The cached answer, counted as a hit or a miss (recruiter_answer_cache_lookups)."""
        answer = await self._get(key)
        (_MISSES if answer is None else _HITS).inc()
        return answer

    async def _get(self, key: str) -> CachedAnswer | None:
        raw = await self._redis.get(key)
        return None if raw is None else CachedAnswer.model_validate_json(raw)

    async def put(self, key: str, answer: CachedAnswer) -> None:
        await self._redis.set(key, answer.model_dump_json(), ex=self._ttl)

    async def try_lock(self, key: str, seconds: float) -> str | None:
        """Become the one caller for `key`; returns a token to unlock with, or None if taken."""
        token = secrets.token_hex(8)
        taken = await self._redis.set(key + _LOCK_SUFFIX, token, nx=True, px=int(seconds * 1000))
        return token if taken else None

    async def unlock(self, key: str, token: str) -> None:
        await self._redis.eval(_UNLOCK, 1, key + _LOCK_SUFFIX, token)

    async def wait(self, key: str, timeout: float, poll: float = 0.02) -> CachedAnswer | None:
        """Wait for another caller's answer; None when its lock is gone with no answer (it failed)
        or the timeout passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:  # polls are not lookups: uncounted
            answer = await self._get(key)
            if answer is not None:
                return answer
            if not await self._redis.exists(key + _LOCK_SUFFIX):
                return await self._get(key)
            await asyncio.sleep(poll)
        return None
