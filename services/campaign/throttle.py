"""The sending limits every campaign-service process shares, kept in Redis: per sender identity a
daily cap and a minimum spacing between two emails (plus jitter), and one global rate across all
senders. A reservation is one Lua script, so two processes asking at once never both get the
last slot of the day.

The time is the caller's (`now`, from the Sender's injectable clock), never Redis's own TIME, so
a test's fake clock decides as a real one would; keys expire by themselves (a day's counter a
day after the day ends, a spacing or rate mark soon after it lapses).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as redis

from services.campaign.domain.pacing import Reservation, SenderPace, WaitingFor

DEFAULT_NAMESPACE = "campaign:pace"

# KEYS: the sender's day counter, the sender's spacing mark, the global rate mark.
# ARGV: now (ms), daily cap, the next day's start (ms), the longest spacing (ms), the global
# interval (ms), 1 to take the slot or 0 to only look, the day counter's TTL (s), the spacing to
# keep after this email (ms, jitter included).
# A mark further ahead than one spacing (or interval) can be is a clock that went backwards
# (another process's, or a test's): it is ignored rather than waited for.
# Returns {reason or "go", until (ms)}.
_RESERVE = """
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local day_end = tonumber(ARGV[3])
local spacing = tonumber(ARGV[4])
local interval = tonumber(ARGV[5])
if cap > 0 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  if used >= cap then return {'daily_cap', day_end} end
end
if spacing > 0 then
  local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
  if mark > now and mark - now <= spacing then return {'spacing', mark} end
end
if interval > 0 then
  local mark = tonumber(redis.call('GET', KEYS[3]) or '0')
  if mark > now and mark - now <= interval then return {'rate', mark} end
end
if ARGV[6] == '1' then
  if cap > 0 then
    redis.call('INCR', KEYS[1])
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
  end
  if spacing > 0 then
    local gap = tonumber(ARGV[8])
    redis.call('SET', KEYS[2], now + gap, 'PX', gap + 60000)
  end
  if interval > 0 then
    redis.call('SET', KEYS[3], now + interval, 'PX', interval + 60000)
  end
end
return {'go', now}
"""
# Gives back a granted slot that was not used (nothing was due after all): the day's count, and
# the spacing and rate marks if no later reservation has moved them.
# KEYS as above; ARGV: counted (1/0), the spacing mark set (ms), the rate mark set (ms).
_RELEASE = """
if ARGV[1] == '1' and tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
if ARGV[2] ~= '0' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
if ARGV[3] ~= '0' and redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
"""


class RedisThrottle:
    """Reservations against the shared limits: `reserve` takes a slot when one is free,
    `peek` only says whether one is (the campaign view's "why it waits"), `release` gives
    back a slot that was not used. `rate_per_second` is the global rate (0: none)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        rate_per_second: float = 0.0,
        namespace: str = DEFAULT_NAMESPACE,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._interval_ms = round(1000 / rate_per_second) if rate_per_second > 0 else 0
        self._namespace = namespace
        self._rng = rng or random.Random()
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def applies_to(self, pace: SenderPace) -> bool:
        """Whether any shared limit is on for this sender (else Redis need not be asked)."""
        return bool(self._interval_ms or pace.daily_cap > 0 or pace.spacing_seconds > 0)

    async def reserve(self, pace: SenderPace, now: datetime) -> Reservation:
        return await self._ask(pace, now, take=True)

    async def peek(self, pace: SenderPace, now: datetime) -> Reservation:
        return await self._ask(pace, now, take=False)

    async def release(self, reservation: Reservation) -> None:
        pace = reservation.pace
        if pace is None or not reservation.granted:
            return
        await self._release(
            keys=self._keys(pace, reservation.day),
            args=[
                1 if pace.daily_cap > 0 else 0,
                reservation.spacing_until_ms,
                reservation.rate_until_ms,
            ],
        )

    async def _ask(self, pace: SenderPace, now: datetime, *, take: bool) -> Reservation:
        if not self.applies_to(pace):
            return Reservation(at=now)
        now_ms = _ms(now)
        day, day_end = pace.day(now)
        spacing_ms = round(pace.spacing(self._rng) * 1000) if take else 0
        day_ttl = max(1, math.ceil((day_end - now).total_seconds()) + 86_400)
        reason, until = cast(
            list[bytes | int],
            await self._reserve(
                keys=self._keys(pace, day),
                args=[
                    now_ms, pace.daily_cap, _ms(day_end), _max_spacing_ms(pace),
                    self._interval_ms, 1 if take else 0, day_ttl, spacing_ms,
                ],
            ),
        )  # fmt: skip
        name = reason.decode() if isinstance(reason, bytes) else str(reason)
        at = datetime.fromtimestamp(int(until) / 1000, UTC)
        if name != "go":
            return Reservation(at=at, waiting_for=cast(WaitingFor, name), pace=pace, day=day)
        if not take:
            return Reservation(at=now)
        return Reservation(
            at=now, pace=pace, day=day,
            spacing_until_ms=now_ms + spacing_ms if spacing_ms else 0,
            rate_until_ms=now_ms + self._interval_ms if self._interval_ms else 0,
        )  # fmt: skip

    def _keys(self, pace: SenderPace, day: str) -> list[str]:
        sender = f"{self._namespace}:sender:{pace.key}"
        return [f"{sender}:day:{day}", f"{sender}:next", f"{self._namespace}:global:next"]


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _max_spacing_ms(pace: SenderPace) -> int:
    """A peek checks the mark against the longest spacing it could have been set with."""
    if pace.spacing_seconds <= 0:
        return 0
    return round((pace.spacing_seconds + max(0.0, pace.jitter_seconds)) * 1000)
