"""A campaign's funnel over time: for each hour (or day), how many of its emails had been sent,
delivered, opened, clicked, replied to, unsubscribed, bounced or complained about by then.

An email counts once per kind, at the first such event (a second open is not a second reader).
The repository reads those first times grouped by bucket; this module fills the empty buckets
and adds them up, so a chart draws a line per kind that never goes down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Bucket = Literal["hour", "day"]
KINDS = (
    "sent", "delivered", "opened", "clicked", "replied", "unsubscribed", "bounced", "complained",
)  # fmt: skip
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_POINTS = 24 * 31  # a month of hours; longer campaigns are shown by day


@dataclass(frozen=True)
class Point:
    at: datetime  # the bucket's start
    counts: Mapping[str, int]  # kind -> emails with such an event by the bucket's end


def choose_bucket(first: datetime, last: datetime, asked: Bucket | None) -> Bucket:
    """The bucket asked for, unless hours would make too many points: then days."""
    if asked == "day" or last - first > STEP["hour"] * MAX_POINTS:
        return "day"
    return asked or "hour"


def truncate(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket == "day" else moment


def cumulative(
    firsts: Iterable[tuple[datetime, str, int]], bucket: Bucket, until: datetime
) -> list[Point]:
    """From (bucket start, kind, emails whose first such event fell in it), one point per bucket
    from the first with an event to the one holding `until`, each with the running totals."""
    added: dict[datetime, dict[str, int]] = {}
    for at, kind, emails in firsts:
        added.setdefault(truncate(at, bucket), {}).setdefault(kind, 0)
        added[truncate(at, bucket)][kind] += emails
    if not added:
        return []
    totals = dict.fromkeys(KINDS, 0)
    points: list[Point] = []
    at, end = min(added), max(truncate(until, bucket), max(added))
    while at <= end and len(points) < MAX_POINTS:
        for kind, emails in added.get(at, {}).items():
            totals[kind] = totals.get(kind, 0) + emails
        points.append(Point(at, dict(totals)))
        at += STEP[bucket]
    return points
