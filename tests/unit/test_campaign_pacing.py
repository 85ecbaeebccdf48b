"""Token buckets (the per-campaign send rate), a sender identity's day and spacing, the identities
file, and retry backoff, on a fake clock. The limits shared in Redis are tested against a real
Redis in tests/integration/test_campaign_pacing.py."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.campaign.domain.pacing import (
    RateLimiter,
    Reservation,
    RetryPolicy,
    SenderPace,
    TokenBucket,
    wait_seconds,
)
from services.campaign.mailer import IdentitiesError, Mailboxes
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


def test_a_senders_day_is_its_own_and_ends_at_its_midnight() -> None:
    pace = SenderPace("r@example.com", timezone="Asia/Tokyo")
    late_friday_utc = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # Saturday 08:30 in Tokyo
    day, next_day = pace.day(late_friday_utc)
    assert day == "2026-12-05"
    assert next_day == datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # Sunday 00:00 in Tokyo
    assert SenderPace("r@example.com").day(late_friday_utc) == (
        "2026-12-04",
        datetime(2026, 12, 5, tzinfo=UTC),
    )


def test_spacing_adds_up_to_the_jitter() -> None:
    pace = SenderPace("r@example.com", spacing_seconds=100, jitter_seconds=20)
    rng = random.Random(3)
    gaps = [pace.spacing(rng) for _ in range(200)]
    assert all(100 <= gap <= 120 for gap in gaps)
    assert len(set(gaps)) > 100
    assert SenderPace("r@example.com", spacing_seconds=0, jitter_seconds=20).spacing(rng) == 0


def test_a_wait_is_never_negative() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    reservation = Reservation(at=now + timedelta(seconds=90), waiting_for="spacing")
    assert not reservation.granted
    assert wait_seconds(reservation, now) == 90
    assert wait_seconds(Reservation(at=now - timedelta(seconds=5)), now) == 0


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


# ---- Sender identities (SENDER_IDENTITIES_FILE) ----------------------------------------------

BRUNO: dict[str, object] = {
    "user": "bruno",
    "name": "Bruno",
    "email": "bruno@recruiting.example.com",
}
IDENTITIES = {
    "identities": [
        {
            "user": "ada",
            "name": "Ada Lovelace",
            "email": "ada@recruiting.example.com",
            "smtp_username": "ada",
            "smtp_password_env": "ADA_SMTP_PASSWORD",
            "daily_cap": 50,
            "spacing_seconds": 60,
            "timezone": "Europe/London",
            "signature": "Ada, Talent Team",
        },
        BRUNO,
    ]
}


def identities_settings(tmp_path: Path, content: object) -> Settings:
    path = tmp_path / "identities.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return Settings(
        sender_identities_file=str(path),
        smtp_host="relay.example.com",
        smtp_port=2525,
        smtp_username="shared",
        smtp_password="shared-secret",
        send_daily_cap=200,
        send_spacing_seconds=100,
        sender_timezone="Europe/Berlin",
    )


def test_a_campaign_sends_from_its_creators_identity(tmp_path: Path) -> None:
    settings = identities_settings(tmp_path, IDENTITIES)
    boxes = Mailboxes.from_settings(settings, environ={"ADA_SMTP_PASSWORD": "ada-secret"})
    ada = boxes.for_user("ada")
    assert (ada.identity.name, ada.identity.email, ada.identity.user) == (
        "Ada Lovelace",
        "ada@recruiting.example.com",
        "ada",
    )
    assert ada.identity.signature == "Ada, Talent Team"
    assert ada.identity.company == settings.sender_company  # shared fields from SENDER_*
    assert (ada.smtp.host, ada.smtp.port) == ("relay.example.com", 2525)  # SMTP_HOST/PORT
    assert (ada.smtp.username, ada.smtp.password) == ("ada", "ada-secret")
    assert ada.pace == SenderPace("ada@recruiting.example.com", 50, 60, 20, "Europe/London")
    bruno = boxes.for_user("bruno")  # nothing of its own: the defaults, and the shared login
    assert bruno.pace == SenderPace("bruno@recruiting.example.com", 200, 100, 20, "Europe/Berlin")
    assert (bruno.smtp.username, bruno.smtp.password) == ("shared", "shared-secret")
    for nobody in (None, "carla"):
        assert boxes.for_user(nobody) == boxes.default
    assert boxes.default.identity.email == settings.sender_email
    assert boxes.default.identity.user is None


def test_no_identities_file_means_the_default_identity_only() -> None:
    boxes = Mailboxes.from_settings(Settings())
    assert boxes.by_user == {}
    assert boxes.for_user("ada") == boxes.default
    assert boxes.default.pace == SenderPace("recruiting@example.com", 200, 100.0, 20.0, "UTC")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "not JSON"),
        ({"identities": [{"user": "x", "name": "X"}]}, "email"),
        ({"identities": [{**BRUNO, "colour": "red"}]}, "colour"),
        ({"identities": [{**BRUNO, "timezone": "Mars/Base"}]}, "Mars"),
        ({"identities": [BRUNO] * 2}, "twice: bruno"),
        (IDENTITIES, r"\$ADA_SMTP_PASSWORD, which is not set"),
    ],
)
def test_a_bad_identities_file_fails_at_startup_saying_why(
    tmp_path: Path, content: object, error: str
) -> None:
    settings = identities_settings(tmp_path, content)
    with pytest.raises(IdentitiesError, match=error) as caught:
        Mailboxes.from_settings(settings, environ={})
    assert "identities.json" in str(caught.value)


def test_a_missing_identities_file_is_named() -> None:
    settings = Settings(sender_identities_file="/nowhere/identities.json")
    with pytest.raises(IdentitiesError, match=r"/nowhere/identities\.json: cannot read it"):
        Mailboxes.from_settings(settings)
