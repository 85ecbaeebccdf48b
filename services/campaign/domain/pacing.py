"""How fast campaign email goes out: a token bucket for the per-campaign rate (per process), the
limits of a sender identity that every process shares (a daily cap, spacing with jitter; their
state lives in Redis, see `throttle.py`), and the backoff between tries after a temporary SMTP
failure.

Outreach is paced on purpose: mailbox providers judge a sender by its bursts, and a recruiter's
emails read better spaced out. See docs/email.md, "Pacing".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import Literal
from zoneinfo import ZoneInfo

from shared.settings import Settings

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
GLOBAL = "global"
_JITTER = random.Random()


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`. Pure: the caller passes the time.

    A reservation takes its token at once, even one not yet earned (the balance goes negative),
    and returns how long to wait for it. Concurrent callers are thus served in order and never
    race for the same token, and there is nothing to loop on.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = now

    def reserve(self, now: float) -> float:
        """Take a token; seconds to wait before using it (0: now)."""
        self._refill(now)
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def is_full(self, now: float) -> bool:
        """A full bucket behaves like a new one, so it may be forgotten."""
        self._refill(now)
        return self._tokens >= self.burst

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)  # a clock going backwards adds nothing
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now


class RateLimiter:
    """One bucket per key (a campaign id, or GLOBAL). A rate of 0 or None turns the limit off."""

    def __init__(
        self,
        rate_per_second: float | None,
        *,
        burst: float = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_keys: int = 1_000,
    ) -> None:
        self.rate = rate_per_second or 0.0
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._max_keys = max_keys
        self._buckets: dict[Hashable, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @property
    def tracked_keys(self) -> int:
        return len(self._buckets)

    def reserve(self, key: Hashable = GLOBAL) -> float:
        """Take the key's next slot; seconds until it comes."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.reserve(now)

    async def acquire(self, key: Hashable = GLOBAL) -> None:
        """Wait for the key's next slot."""
        delay = self.reserve(key)
        if delay > 0:
            await self._sleep(delay)

    def _forget_idle(self, now: float) -> None:
        """Keeps memory bounded as campaigns come and go: full buckets carry no state."""
        if len(self._buckets) < self._max_keys:
            return
        for key in [k for k, b in self._buckets.items() if b.is_full(now)]:
            del self._buckets[key]


WaitingFor = Literal["daily_cap", "spacing", "rate"]
WallClock = Callable[[], datetime]  # an aware datetime: the sender's "now"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SenderPace:
    """One sender identity's limits, which every sending process shares (`throttle.py` keeps
    their state in Redis). 0 turns a limit off."""

    key: str  # names the identity's Redis keys: its address, lower-case
    daily_cap: int = 200
    spacing_seconds: float = 100.0
    jitter_seconds: float = 20.0
    timezone: str = "UTC"  # whose midnight starts a new day for the cap

    def spacing(self, rng: random.Random | None = None) -> float:
        """The gap to keep after an email: the spacing plus up to `jitter_seconds`, so a day's
        emails do not tick like a metronome (mailbox providers notice)."""
        if self.spacing_seconds <= 0:
            return 0.0
        return self.spacing_seconds + (rng or _JITTER).uniform(0, max(0.0, self.jitter_seconds))

    def day(self, now: datetime) -> tuple[str, datetime]:
        """The sender's day at `now` (its key, YYYY-MM-DD) and when the next one starts (UTC)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time_of_day(), local.tzinfo)
        return local.date().isoformat(), tomorrow.astimezone(UTC)


@dataclass(frozen=True)
class Reservation:
    """The answer to "may this sender send now?": yes (`waiting_for` None, `at` is now), or
    not before `at`, because of `waiting_for`. A granted one remembers what it took, so an
    unused slot can be given back (`throttle.RedisThrottle.release`)."""

    at: datetime
    waiting_for: WaitingFor | None = None
    pace: SenderPace | None = None  # None: no shared limit applied
    day: str = ""
    spacing_until_ms: int = 0
    rate_until_ms: int = 0

    @property
    def granted(self) -> bool:
        return self.waiting_for is None


def wait_seconds(reservation: Reservation, now: datetime) -> float:
    return max(0.0, (reservation.at - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a temporarily failed email again, and when to stop."""

    max_attempts: int = 5
    base_seconds: float = 60.0
    max_seconds: float = 3_600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.send_max_attempts,
            base_seconds=settings.send_retry_base_seconds,
            max_seconds=settings.send_retry_max_seconds,
        )

    def delay_after(self, attempts: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after `attempts` tries (the row's count, this failure included), or None
        when the email has had all its tries.

        Exponential, capped, with "equal jitter": half the delay is fixed and half random. The
        fixed half keeps a retry from coming back at once (greylisting servers want minutes);
        the random half spreads a campaign's retries so they do not return as one burst.
        """
        if attempts < 1:
            raise ValueError("attempts counts tries made, so it is at least 1 after a failure")
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** (attempts - 1))
        return ceiling / 2 + (rng or _JITTER).uniform(0, ceiling / 2)
