"""A campaign's funnel over time: running totals per bucket, empty buckets filled, never down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.campaign.domain.timeline import MAX_POINTS, choose_bucket, cumulative

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_running_totals_per_hour_with_the_quiet_hours_filled() -> None:
    firsts = [
        (T0, "sent", 3),
        (T0 + timedelta(minutes=30), "sent", 1),  # the same hour
        (T0 + timedelta(hours=2), "opened", 2),
        (T0 + timedelta(hours=3, minutes=5), "replied", 1),
    ]
    points = cumulative(firsts, "hour", until=T0 + timedelta(hours=4, minutes=10))
    assert [p.at for p in points] == [T0 + timedelta(hours=h) for h in range(5)]
    assert [p.counts["sent"] for p in points] == [4, 4, 4, 4, 4]
    assert [p.counts["opened"] for p in points] == [0, 0, 2, 2, 2]
    assert [p.counts["replied"] for p in points] == [0, 0, 0, 1, 1]
    assert points[0].counts["bounced"] == 0


def test_days_and_nothing() -> None:
    firsts = [(T0, "sent", 2), (T0 + timedelta(days=2, hours=5), "clicked", 1)]
    points = cumulative(firsts, "day", until=T0 + timedelta(days=2))
    assert [p.at.day for p in points] == [1, 2, 3]
    assert [p.counts["clicked"] for p in points] == [0, 0, 1]
    assert cumulative([], "hour", until=T0) == []


def test_a_long_campaign_is_shown_by_day() -> None:
    assert choose_bucket(T0, T0 + timedelta(hours=5), None) == "hour"
    assert choose_bucket(T0, T0 + timedelta(hours=MAX_POINTS + 1), "hour") == "day"
    assert choose_bucket(T0, T0 + timedelta(hours=1), "day") == "day"
    many = cumulative([(T0, "sent", 1)], "hour", until=T0 + timedelta(hours=MAX_POINTS * 2))
    assert len(many) == MAX_POINTS
