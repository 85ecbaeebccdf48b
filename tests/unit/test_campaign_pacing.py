"""Token buckets, the global and per-campaign send rates, and retry backoff, on a fake clock."""

from __future__ import annotations

import asyncio
import random
from itertools import pairwise

import pytest

from services.campaign.domain.pacing import GLOBAL, RateLimiter, RetryPolicy, SendPacer, TokenBucket
from shared.settings import Settings


class FakeTime:
    """A clock that only moves when a waiter sleeps, so waits are exact and instant."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_bucket_spaces_reservations_by_its_rate() -> None:
    bucket = TokenBucket(rate=5, burst=1, now=0)
    assert [bucket.reserve(now=0) for _ in range(4)] == pytest.approx([0, 0.2, 0.4, 0.6])


def test_a_bucket_refills_with_time_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.reserve(now=0) for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])
    assert bucket.reserve(now=1.5) == pytest.approx(0)  # 0.5 s to repay, then 1 s earned 2
    assert not bucket.is_full(now=1.5)
    assert bucket.is_full(now=100)  # never more than the burst, however long it waited
    assert [bucket.reserve(now=100) for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])


def test_a_clock_going_backwards_earns_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10)
    assert bucket.reserve(now=10) == 0
    assert bucket.reserve(now=5) == pytest.approx(1)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_a_bucket_needs_a_positive_rate_and_a_burst(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=rate, burst=burst, now=0)


@pytest.mark.parametrize("rate", [0, None])
async def test_a_zero_or_missing_rate_never_waits(rate: float | None) -> None:
    time = FakeTime()
    limiter = RateLimiter(rate, clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        await limiter.acquire("c1")
    assert not limiter.enabled
    assert time.slept == []


async def test_acquire_waits_for_the_next_slot() -> None:
    time = FakeTime()
    limiter = RateLimiter(2, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await limiter.acquire()
    assert time.slept == pytest.approx([0.5, 0.5])
    assert time.now == pytest.approx(1_001.0)


async def test_concurrent_waiters_get_distinct_slots_in_order() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # a real wait would overlap; the clock stands still
        slept.append(seconds)
        await asyncio.sleep(0)

    limiter = RateLimiter(4, clock=lambda: 0.0, sleep=sleep)
    await asyncio.gather(*(limiter.acquire("c1") for _ in range(5)))
    assert slept == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(1, clock=lambda: 0.0)
    assert [limiter.reserve("a"), limiter.reserve("b"), limiter.reserve("a")] == [0, 0, 1]


def test_idle_keys_are_forgotten_so_memory_stays_bounded() -> None:
    time = FakeTime()
    limiter = RateLimiter(1, clock=time.clock, max_keys=10)
    for n in range(1_000):
        limiter.reserve(f"campaign-{n}")
        time.now += 1  # every earlier bucket is full again
    assert limiter.tracked_keys <= 10
    limiter.reserve("busy")
    assert limiter.reserve("busy") == pytest.approx(1)  # a live bucket is kept


async def test_the_pacer_holds_both_the_campaign_and_the_global_rate() -> None:
    time = FakeTime()
    pacer = SendPacer(
        RateLimiter(5, clock=time.clock, sleep=time.sleep),
        RateLimiter(1, clock=time.clock, sleep=time.sleep),
    )
    sends: list[tuple[str, float]] = []
    for _ in range(4):
        for campaign in ("a", "b", "c", "d", "e", "f", "g"):
            await pacer.acquire(campaign)
            sends.append((campaign, time.now))
    times = [t for _, t in sends]
    assert all(later - earlier >= 0.2 - 1e-9 for earlier, later in pairwise(times))
    for campaign in "abcdefg":
        own = [t for c, t in sends if c == campaign]
        assert all(later - earlier >= 1 - 1e-9 for earlier, later in pairwise(own))
    # Seven campaigns at 1/s each want 7/s; the global 5/s is what binds.
    assert times[-1] - times[0] == pytest.approx(27 * 0.2)


def test_the_pacer_reads_its_rates_from_settings() -> None:
    settings = Settings(send_rate_per_second=3, campaign_send_rate_per_second=0.01)
    pacer = SendPacer.from_settings(settings)
    assert pacer.global_limit.rate == 3
    assert pacer.campaign_limit.rate == 0.01  # 100 s between a campaign's emails
    assert pacer.global_limit.reserve(GLOBAL) == 0


def test_retries_back_off_exponentially_with_jitter_within_bounds() -> None:
    policy = RetryPolicy(max_attempts=6, base_seconds=60, max_seconds=400)
    rng = random.Random(7)
    for attempts, ceiling in [(1, 60), (2, 120), (3, 240), (4, 400), (5, 400)]:
        delays = [policy.delay_after(attempts, rng) for _ in range(200)]
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, so retries do not come back as one burst


def test_retries_stop_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay_after(2) is not None
    assert policy.delay_after(3) is None
    assert policy.delay_after(9) is None


def test_attempts_count_tries_made() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy().delay_after(0)


def test_the_retry_policy_reads_settings() -> None:
    settings = Settings(send_max_attempts=2, send_retry_base_seconds=1, send_retry_max_seconds=2)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(2, 1, 2)
