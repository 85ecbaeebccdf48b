"""Server-Sent Events framing, shared by the streaming endpoints, and the limit on the streams one
API key holds open at once (MAX_STREAMS_PER_KEY, every gateway worker and replica together).

A key's open streams are a sorted set in Redis: one member per stream, scored by when its lease
ends (Redis's clock). A stream renews its lease every LEASE_SECONDS / 3 while it runs and removes
itself when it ends, whether it finished, the client went away, or it failed; a stream whose
worker died stops renewing and its place frees when the lease ends. Redis unreachable: streams
are let through (availability over strictness), with a warning at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from services.gateway.api_keys import Principal
from services.gateway.rate_limits import REDIS_DOWN, REDIS_WAIT_SECONDS

log = logging.getLogger(__name__)

KEEP_ALIVE = ": keep-alive\n\n"  # a comment line: keeps proxies from closing an idle stream
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
LEASE_SECONDS = 30
_PREFIX = "gateway:streams:"

# KEYS[1]: the key's open streams. ARGV: the most, lease in ms, this stream's id.
# Returns 1 when the stream may open (and holds its place), else 0.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
# The same ARGV: push this stream's lease on (only if it still holds a place).
_RENEW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local renewed = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return renewed
"""


def sse_event(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# Named events, as a producer yields them: (event name, its data).
Events = AsyncGenerator[tuple[str, dict[str, Any]], None]


class Slot:
    """One stream's place among its key's open streams; `release` is safe to call twice. The
    place of a stream let through without Redis is an empty one (`name` None)."""

    def __init__(
        self, redis: Redis | None, name: str | None, member: str, lease: float = LEASE_SECONDS
    ) -> None:
        self._redis = redis
        self.name = name
        self.member = member
        self.lease = lease

    async def renew(self) -> None:
        if self._redis is None or self.name is None:
            return
        args: list[int | str] = [0, int(self.lease * 1000), self.member]
        try:
            async with asyncio.timeout(REDIS_WAIT_SECONDS):
                await self._redis.register_script(_RENEW)(keys=[self.name], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            REDIS_DOWN.warn("could not renew a stream's lease (%s: %s)", type(exc).__name__, exc)

    async def release(self) -> None:
        if self._redis is None or self.name is None:
            return
        name, self.name = self.name, None
        try:
            async with asyncio.timeout(REDIS_WAIT_SECONDS):
                await self._redis.zrem(name, self.member)
        except (RedisError, OSError, TimeoutError) as exc:
            REDIS_DOWN.warn("could not free a stream's place (%s: %s)", type(exc).__name__, exc)


NO_SLOT = Slot(None, None, "")


class StreamSlots:
    """The open streams of each key, in Redis."""

    def __init__(self, redis: Redis, most: int, lease: float = LEASE_SECONDS) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self.most = most
        self.lease = lease

    async def acquire(self, key_id: str) -> Slot | None:
        """A place for one more stream of `key_id`; None when it holds MAX_STREAMS_PER_KEY."""
        if self.most <= 0:
            return NO_SLOT
        name, member = _PREFIX + key_id, uuid.uuid4().hex
        args: list[int | str] = [self.most, int(self.lease * 1000), member]
        try:
            async with asyncio.timeout(REDIS_WAIT_SECONDS):
                taken = await self._acquire(keys=[name], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            REDIS_DOWN.warn(
                "stream limits are off: Redis did not answer (%s: %s)", type(exc).__name__, exc
            )
            return NO_SLOT
        return Slot(self._redis, name, member, self.lease) if taken else None


async def open_slot(request: Request, principal: Principal) -> Slot:
    """A place for a stream of the caller's key, or 429 when the key holds its most."""
    slots: StreamSlots = request.app.state.stream_slots
    slot = await slots.acquire(principal.key_id)
    if slot is None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many open streams: this API key holds {slots.most} "
            "(MAX_STREAMS_PER_KEY); close one, or retry in a few seconds",
            headers={"Retry-After": "5"},
        )
    return slot


@contextlib.asynccontextmanager
async def reserved(
    request: Request, principal: Principal, wanted: bool = True
) -> AsyncIterator[Slot]:
    """A stream's place taken before the work that leads to the stream: freed if that work
    fails; otherwise the response it goes to (`held_stream`, `sse_response`) frees it."""
    slot = await open_slot(request, principal) if wanted else NO_SLOT
    try:
        yield slot
    except BaseException:
        await slot.release()
        raise


class HeldStream(StreamingResponse):
    """A streaming response that holds a stream's place while it streams: renews its lease and
    frees it when the stream ends, the client goes away or the stream fails."""

    def __init__(
        self, content: AsyncIterator[str], slot: Slot, background: BackgroundTask | None = None
    ) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers=HEADERS, background=background
        )
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        renewing = asyncio.create_task(self._renew())
        try:
            await super().__call__(scope, receive, send)
        finally:
            renewing.cancel()
            await asyncio.shield(self.slot.release())
            closing = getattr(self.body_iterator, "aclose", None)
            with contextlib.suppress(Exception):
                if closing is not None:
                    await closing()  # a producer left waiting at a send stops now

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.slot.lease / 3)
            await self.slot.renew()


def held_stream(events: AsyncIterator[str], slot: Slot = NO_SLOT) -> StreamingResponse:
    """Server-Sent Events text as a response that holds `slot` while it streams."""
    return HeldStream(events, slot)


def sse_response(events: Events, slot: Slot = NO_SLOT) -> StreamingResponse:
    """`events` as a Server-Sent Events response; the producer is closed when the client goes
    away mid-stream (so it stops waiting on a service), and `slot` freed when the stream ends."""

    async def body() -> AsyncIterator[str]:
        async with contextlib.aclosing(events):
            async for name, data in events:
                yield sse_event(name, data)

    return HeldStream(body(), slot)
