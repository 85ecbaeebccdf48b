"""Rate limits and request deadlines at the gateway: sliding windows in Redis shared by every worker
and replica, the 429 they answer, the RateLimit-* headers, and a 504 for a request that takes too
long before its response starts.

The window is a sorted set per caller (one member per request it was allowed, scored by the Redis
server's clock in milliseconds), checked and added to by one Lua script, so two workers never both
take the last place. Why a sorted set and not two fixed windows weighted together: it is exact
(never more than the limit in any 60 s, which a test can count and an operator can promise) and
it gives the true Retry-After (when the oldest counted request leaves the window); its memory is
at most the limit's number of members per caller for 60 s, and a refused request adds nothing.

Who is counted (docs/operations.md, "Limits"): a verified API key, or a web session as its key
(`charge_key`, called by `auth.require`); each public route per client address (`public_limit`);
every other request per client address once it is answered without a verified key (the
middleware): no key, a wrong key, a web page. Never a key id read from a header before it is
verified. /healthz, /readyz and /metrics are never limited.

Redis unreachable: every request is let through (availability over strictness), and a warning
is logged at most once a minute per process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request, status
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.api_keys import Principal
from shared.settings import Settings

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_WAIT_SECONDS = 1.0  # a limiter that waits longer on Redis lets the request through
WARN_EVERY_SECONDS = 60.0
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MODEL_PATHS = ("/api/ai-assistant/inference", "/api/ai-assistant/chat")
_PREFIX = "gateway:rate:"
_CHARGED = "rate_limit_charged"  # request.state: this request was counted (or is exempt)
_DECISION = "rate_limit_decision"  # request.state: the Decision its headers report

Kind = Literal["key", "anonymous", "public"]

# KEYS[1]: the caller's window. ARGV: limit, window in ms, a unique member for this request.
# Returns {allowed (0/1), requests in the window (this one included if allowed), now in ms,
# the oldest request's time in ms}.
SLIDING_WINDOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local first = now
if oldest[2] then first = tonumber(oldest[2]) end
return {allowed, count, now, first}
"""


# -- the pure parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One limit: what it is called in an answer, the setting that sets it, requests a window."""

    name: str
    setting: str
    per_window: int

    @property
    def off(self) -> bool:
        return self.per_window <= 0


def limit_for(kind: Kind, settings: Settings) -> Limit:
    """The limit a caller of this kind gets."""
    if kind == "key":
        return Limit(
            "per API key", "RATE_LIMIT_PER_KEY_PER_MINUTE", settings.rate_limit_per_key_per_minute
        )
    if kind == "public":
        return Limit(
            "per client address on this public route",
            "RATE_LIMIT_PUBLIC_PER_MINUTE",
            settings.rate_limit_public_per_minute,
        )
    return Limit(
        "per client address without a valid API key",
        "RATE_LIMIT_ANONYMOUS_PER_MINUTE",
        settings.rate_limit_anonymous_per_minute,
    )


@dataclass(frozen=True)
class Decision:
    """What the window said about one request, and what the RateLimit-* headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the oldest counted request leaves the window
    retry_after: int  # when refused: until a place frees (whole seconds, at least 1)


def seconds_until(later_ms: int, now_ms: int) -> int:
    """Whole seconds from now until `later_ms`, rounded up, at least 1 (Retry-After's rule)."""
    return max(1, math.ceil((later_ms - now_ms) / 1000))


def decide(
    allowed: bool, count: int, now_ms: int, oldest_ms: int, limit: int, window_ms: int
) -> Decision:
    """The decision the window's state stands for: `count` requests in it (this one included
    if allowed), the oldest at `oldest_ms`, which frees its place at `oldest_ms + window_ms`."""
    frees_at = oldest_ms + window_ms
    return Decision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        reset_seconds=seconds_until(frees_at, now_ms),
        retry_after=0 if allowed else seconds_until(frees_at, now_ms),
    )


def headers(decision: Decision) -> dict[str, str]:
    """The IETF draft's RateLimit-Limit/-Remaining/-Reset, and Retry-After when refused."""
    found = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        found["Retry-After"] = str(decision.retry_after)
    return found


def refusal(limit: Limit, decision: Decision) -> str:
    """The error body's `detail` for a refused request: which limit, and when to retry."""
    return (
        f"rate limit exceeded: {limit.per_window} requests in {WINDOW_SECONDS} s {limit.name} "
        f"({limit.setting}); retry in {decision.retry_after} s"
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """TRUSTED_PROXIES: comma-separated addresses or networks."""
    return tuple(
        ipaddress.ip_network(i.strip(), strict=False) for i in text.split(",") if i.strip()
    )


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, or the first X-Forwarded-For hop when the peer is a
    trusted proxy (a client could write anything there, so nobody else is believed)."""
    address = peer or "unknown"
    if not forwarded_for or not trusted or peer is None:
        return address
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return address
    if not any(ip in network for network in trusted):
        return address
    first = forwarded_for.split(",")[0].strip()
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return address  # not an address: the proxy's word is not usable, count the proxy


def is_exempt(path: str) -> bool:
    """Probes and scrapes are never limited (an orchestrator must always reach them)."""
    return path in EXEMPT_PATHS


def deadline_for(path: str, settings: Settings) -> float | None:
    """Seconds a request to `path` may take before its response starts; None: no deadline."""
    base = settings.http_request_timeout_seconds
    if base <= 0:
        return None
    if path.startswith(MODEL_PATHS):
        return base + settings.inference_timeout_seconds
    return base


# -- Redis ------------------------------------------------------------------------------------


class _Warner:
    """Logs a warning at most once every WARN_EVERY_SECONDS."""

    def __init__(self) -> None:
        self._last = -math.inf

    def reset(self) -> None:
        self._last = -math.inf

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last >= WARN_EVERY_SECONDS:
            self._last = now
            log.warning(message, *args)


REDIS_DOWN = _Warner()


class RateLimiter:
    """The sliding windows in Redis; `hit` is None when Redis did not answer (let it through)."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(SLIDING_WINDOW)

    async def hit(self, bucket: str, limit: Limit) -> Decision | None:
        window_ms = WINDOW_SECONDS * 1000
        args: list[int | str] = [limit.per_window, window_ms, uuid.uuid4().hex]
        try:
            async with asyncio.timeout(REDIS_WAIT_SECONDS):
                result = await self._script(keys=[_PREFIX + bucket], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            REDIS_DOWN.warn(
                "rate limits are off: Redis did not answer (%s: %s); letting requests through",
                type(exc).__name__,
                exc,
            )
            return None
        allowed, count, now_ms, oldest_ms = (int(v) for v in result)
        return decide(bool(allowed), count, now_ms, oldest_ms, limit.per_window, window_ms)


def _address(scope: Scope, settings: Settings) -> str:
    client = scope.get("client")
    peer = client[0] if client else None
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-for")
    trusted = parse_networks(settings.trusted_proxies)
    return client_address(peer, forwarded.decode("latin-1") if forwarded else None, trusted)


async def _hit(scope: Scope, kind: Kind, who: str) -> tuple[Limit, Decision | None]:
    """Count this request against `who`'s window of `kind`; mark the request as counted."""
    app_state = scope["app"].state
    limit = limit_for(kind, app_state.settings)
    state = scope.setdefault("state", {})
    state[_CHARGED] = True
    if limit.off:
        return limit, None
    limiter: RateLimiter = app_state.rate_limiter
    decision = await limiter.hit(f"{kind}:{who}", limit)
    state[_DECISION] = decision
    return limit, decision


async def _charge(request: Request, kind: Kind, who: str) -> None:
    if request.scope.get("state", {}).get(_CHARGED):
        return  # counted once per request, whatever depends on it twice
    limit, decision = await _hit(request.scope, kind, who)
    if decision is not None and not decision.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=refusal(limit, decision),
            headers=headers(decision),
        )


async def charge_key(request: Request, principal: Principal) -> None:
    """Count a request against its verified key's window (429 when it is full)."""
    await _charge(request, "key", principal.key_id)


async def public_limit(request: Request) -> None:
    """A dependency for the public routes: each route's own window per client address."""
    route = getattr(request.scope.get("route"), "path", request.url.path)
    address = _address(request.scope, request.app.state.settings)
    await _charge(request, "public", f"{route}:{address}")


# -- ASGI middleware --------------------------------------------------------------------------


def _error(status_code: int, detail: str, extra: dict[str, str]) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    start: Message = {"type": "http.response.start", "status": status_code, "headers": raw}
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class RateLimitMiddleware:
    """Counts every request that no route counted (answered without a verified key: no key, a
    wrong one, a page) against its client address, turning the answer into a 429 when the
    address is over its limit; adds the RateLimit-* headers to every counted answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        replaced = False

        async def counted(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the app's own answer, after ours replaced it
            if message["type"] == "http.response.start":
                state = scope.setdefault("state", {})
                if not state.get(_CHARGED):
                    who = _address(scope, scope["app"].state.settings)
                    limit, decision = await _hit(scope, "anonymous", who)
                    if decision is not None and not decision.allowed:
                        replaced = True
                        for part in _error(429, refusal(limit, decision), headers(decision)):
                            await send(part)
                        return
                message = _with_headers(message, state.get(_DECISION))
            await send(message)

        await self.app(scope, receive, counted)


def _with_headers(start: Message, decision: Decision | None) -> Message:
    if decision is None:
        return start
    raw: list[tuple[bytes, bytes]] = list(start.get("headers", []))
    present = {name.lower() for name, _ in raw}
    for name, value in headers(decision).items():
        if name.lower().encode() not in present:
            raw.append((name.lower().encode(), value.encode()))
    return {**start, "headers": raw}


class RequestDeadline:
    """A 504 with the usual error body for a request whose response has not started within its
    deadline (`deadline_for`); once a response starts (a stream) it is never cut."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seconds = None
        if scope["type"] == "http":
            seconds = deadline_for(scope["path"], scope["app"].state.settings)
        if seconds is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with asyncio.timeout(seconds) as deadline:
                await self.app(scope, receive, watched)
        except TimeoutError:
            if started or not deadline.expired():
                raise
            detail = (
                f"the gateway did not answer within {seconds:g} s "
                "(HTTP_REQUEST_TIMEOUT_SECONDS); try again later"
            )
            for part in _error(status.HTTP_504_GATEWAY_TIMEOUT, detail, {}):
                await send(part)
