"""Sending windows: the working days and hours, in the recipient's own time zone, in which
campaign email may go out, and the time zone a recipient is in (theirs, else their city's, else
the sender's). Pure: the caller passes the time.

Outreach read at 03:00 is outreach deleted at 08:00; recruiting tools send in the candidate's
business hours. See docs/email.md, "Pacing".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "always"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# The cities the product knows (the seed data's, and the largest of the intent vocabulary's),
# lower-case, with their IANA zone: a candidate without a `timezone` is in their city's.
CITY_ZONES: dict[str, str] = {
    "amsterdam": "Europe/Amsterdam", "rotterdam": "Europe/Amsterdam",
    "athens": "Europe/Athens", "barcelona": "Europe/Madrid", "madrid": "Europe/Madrid",
    "valencia": "Europe/Madrid", "seville": "Europe/Madrid", "bilbao": "Europe/Madrid",
    "berlin": "Europe/Berlin", "munich": "Europe/Berlin", "münchen": "Europe/Berlin",
    "hamburg": "Europe/Berlin", "frankfurt": "Europe/Berlin", "cologne": "Europe/Berlin",
    "köln": "Europe/Berlin", "stuttgart": "Europe/Berlin", "düsseldorf": "Europe/Berlin",
    "leipzig": "Europe/Berlin", "london": "Europe/London", "manchester": "Europe/London",
    "edinburgh": "Europe/London", "paris": "Europe/Paris", "lyon": "Europe/Paris",
    "warsaw": "Europe/Warsaw", "krakow": "Europe/Warsaw", "kraków": "Europe/Warsaw",
    "wroclaw": "Europe/Warsaw", "lisbon": "Europe/Lisbon", "porto": "Europe/Lisbon",
    "dublin": "Europe/Dublin", "zurich": "Europe/Zurich", "geneva": "Europe/Zurich",
    "vienna": "Europe/Vienna", "stockholm": "Europe/Stockholm", "copenhagen": "Europe/Copenhagen",
    "oslo": "Europe/Oslo", "helsinki": "Europe/Helsinki", "milan": "Europe/Rome",
    "rome": "Europe/Rome", "brussels": "Europe/Brussels", "istanbul": "Europe/Istanbul",
    "prague": "Europe/Prague", "budapest": "Europe/Budapest", "bucharest": "Europe/Bucharest",
    "kyiv": "Europe/Kyiv", "tallinn": "Europe/Tallinn", "new york": "America/New_York",
    "boston": "America/New_York", "san francisco": "America/Los_Angeles",
    "los angeles": "America/Los_Angeles", "seattle": "America/Los_Angeles",
    "austin": "America/Chicago", "chicago": "America/Chicago", "denver": "America/Denver",
    "toronto": "America/Toronto", "vancouver": "America/Vancouver",
    "mexico city": "America/Mexico_City", "são paulo": "America/Sao_Paulo",
    "sao paulo": "America/Sao_Paulo", "buenos aires": "America/Argentina/Buenos_Aires",
    "bangalore": "Asia/Kolkata", "bengaluru": "Asia/Kolkata", "pune": "Asia/Kolkata",
    "hyderabad": "Asia/Kolkata", "mumbai": "Asia/Kolkata", "delhi": "Asia/Kolkata",
    "singapore": "Asia/Singapore", "tokyo": "Asia/Tokyo", "seoul": "Asia/Seoul",
    "shanghai": "Asia/Shanghai", "beijing": "Asia/Shanghai", "hong kong": "Asia/Hong_Kong",
    "dubai": "Asia/Dubai", "tel aviv": "Asia/Jerusalem", "sydney": "Australia/Sydney",
    "melbourne": "Australia/Melbourne", "auckland": "Pacific/Auckland",
    "cape town": "Africa/Johannesburg", "lagos": "Africa/Lagos", "nairobi": "Africa/Nairobi",
}  # fmt: skip


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)") from exc


def recipient_zone(timezone: str | None, city: str | None, sender_zone: str) -> ZoneInfo:
    """The recipient's zone: their own (`candidates.timezone`), else their city's, else the
    sender's. A zone name nobody knows is skipped, not fatal: the email still goes, in hours
    that suit someone."""
    for name in (timezone, CITY_ZONES.get(" ".join((city or "").split()).casefold())):
        if name:
            try:
                return zone(name)
            except ValueError:
                continue
    return zone(sender_zone)


def parse_days(text: str) -> frozenset[int]:
    """Working days from "mon-fri", "mon,wed,fri" or "sun-thu" (0 is Monday); "always" or ""
    gives no days, which `SendingWindow` reads as "no window"."""
    spec = text.strip().lower()
    if spec in ("", ALWAYS):
        return frozenset()
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"SEND_WINDOW_DAYS: {part.strip()!r} is not a day or a range of days")
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        days.update((start + n) % 7 for n in range((end - start) % 7 + 1))
    return frozenset(days)


def parse_time(text: str) -> time:
    match = _HHMM.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (e.g. 09:00)")
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class SendingWindow:
    """Working `days` (0 is Monday), from `start` to `end` (exclusive), local time. No days: the
    window is always open."""

    days: frozenset[int] = frozenset(range(5))
    start: time = time(9)
    end: time = time(17)

    def __post_init__(self) -> None:
        if self.days and self.start >= self.end:
            raise ValueError("a sending window must start before it ends (SEND_WINDOW_START)")

    @classmethod
    def parse(cls, days: str, start: str, end: str) -> SendingWindow:
        return cls(parse_days(days), parse_time(start), parse_time(end))

    @property
    def always(self) -> bool:
        return not self.days

    def is_open(self, now: datetime, where: ZoneInfo) -> bool:
        if self.always:
            return True
        local = now.astimezone(where)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_open(self, now: datetime, where: ZoneInfo) -> datetime:
        """`now` if the window is open, else when it next opens (UTC). The opening is local
        wall time, so it follows daylight saving."""
        if self.is_open(now, where):
            return now.astimezone(UTC)
        today = now.astimezone(where).date()
        for ahead in range(8):
            day = today + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            opens = _wall(day, self.start, where)
            if opens > now:
                return opens
        raise AssertionError("a window with working days opens within a week")

    def describe(self) -> str:
        if self.always:
            return ALWAYS
        return f"{_describe_days(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


def _wall(day: date, at: time, where: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time. A wall time inside a spring-forward gap is read
    with the offset before the jump (PEP 495, fold=0), so it opens as late after the jump as
    it was meant to be after the gap's start."""
    return datetime.combine(day, at, tzinfo=where).astimezone(UTC)


def _describe_days(days: frozenset[int]) -> str:
    return ",".join(DAY_NAMES[d] for d in sorted(days))
