"""Sending windows in the recipient's time zone: open and closed hours, weekends, daylight saving,
and which zone a recipient is in."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.campaign.domain.windows import SendingWindow, parse_days, recipient_zone

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE_HOURS = SendingWindow()  # mon-fri 09:00-17:00


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def test_three_in_the_morning_in_tokyo_is_closed_and_it_opens_at_nine_tokyo_time() -> None:
    three_am = local(TOKYO, 2026, 12, 2, 3, 0)  # a Wednesday
    assert not OFFICE_HOURS.is_open(three_am, TOKYO)
    opens = OFFICE_HOURS.next_open(three_am, TOKYO)
    assert opens == local(TOKYO, 2026, 12, 2, 9, 0)
    assert opens.tzinfo == UTC
    assert opens == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    # The same instant is 19:00 on Tuesday in Berlin: closed there too, but for the evening.
    assert OFFICE_HOURS.next_open(three_am, BERLIN) == local(BERLIN, 2026, 12, 2, 9, 0)


def test_office_hours_are_open_from_start_to_just_before_end() -> None:
    assert OFFICE_HOURS.is_open(local(BERLIN, 2026, 12, 2, 9, 0), BERLIN)
    assert OFFICE_HOURS.is_open(local(BERLIN, 2026, 12, 2, 16, 59), BERLIN)
    assert not OFFICE_HOURS.is_open(local(BERLIN, 2026, 12, 2, 17, 0), BERLIN)
    assert not OFFICE_HOURS.is_open(local(BERLIN, 2026, 12, 2, 8, 59), BERLIN)
    noon = local(BERLIN, 2026, 12, 2, 12, 0)
    assert OFFICE_HOURS.next_open(noon, BERLIN) == noon  # open: now


@pytest.mark.parametrize(
    "when",
    [
        local(BERLIN, 2026, 12, 4, 17, 30),  # Friday evening
        local(BERLIN, 2026, 12, 5, 11, 0),  # Saturday
        local(BERLIN, 2026, 12, 6, 23, 59),  # Sunday night
        local(BERLIN, 2026, 12, 7, 0, 0),  # Monday, before the day starts
    ],
)
def test_a_weekend_waits_for_monday_morning(when: datetime) -> None:
    assert not OFFICE_HOURS.is_open(when, BERLIN)
    assert OFFICE_HOURS.next_open(when, BERLIN) == local(BERLIN, 2026, 12, 7, 9, 0)


def test_the_opening_follows_daylight_saving_time() -> None:
    # Europe moves its clocks forward on Sunday 29 March 2026: 09:00 on Monday is 07:00 UTC,
    # where the Friday before it was 08:00 UTC.
    friday_evening = local(BERLIN, 2026, 3, 27, 18, 0)
    assert OFFICE_HOURS.next_open(friday_evening, BERLIN) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert OFFICE_HOURS.next_open(local(BERLIN, 2026, 3, 27, 6, 0), BERLIN) == datetime(
        2026, 3, 27, 8, 0, tzinfo=UTC
    )
    # New York falls back on Sunday 1 November 2026: 09:00 on Monday is 14:00 UTC, not 13:00.
    assert OFFICE_HOURS.next_open(local(NEW_YORK, 2026, 10, 30, 20, 0), NEW_YORK) == datetime(
        2026, 11, 2, 14, 0, tzinfo=UTC
    )


def test_a_window_of_other_days_and_hours() -> None:
    gulf = SendingWindow.parse("sun-thu", "08:30", "16:00")
    dubai = ZoneInfo("Asia/Dubai")
    friday = local(dubai, 2026, 12, 4, 10, 0)
    assert not gulf.is_open(friday, dubai)
    assert gulf.next_open(friday, dubai) == local(dubai, 2026, 12, 6, 8, 30)  # Sunday
    assert gulf.describe() == "mon,tue,wed,thu,sun 08:30-16:00"


@pytest.mark.parametrize("days", ["always", "", "  "])
def test_always_means_no_window(days: str) -> None:
    window = SendingWindow.parse(days, "09:00", "17:00")
    sunday_night = local(TOKYO, 2026, 12, 6, 3, 0)
    assert window.always
    assert window.is_open(sunday_night, TOKYO)
    assert window.next_open(sunday_night, TOKYO) == sunday_night


def test_days_are_read_as_ranges_and_lists() -> None:
    assert parse_days("mon-fri") == {0, 1, 2, 3, 4}
    assert parse_days("sun-tue") == {6, 0, 1}
    assert parse_days("Mon, wed,fri") == {0, 2, 4}
    with pytest.raises(ValueError, match="'funday'"):
        parse_days("mon,funday")


def test_a_window_must_start_before_it_ends() -> None:
    with pytest.raises(ValueError, match="start before it ends"):
        SendingWindow.parse("mon-fri", "17:00", "09:00")
    with pytest.raises(ValueError, match="HH:MM"):
        SendingWindow.parse("mon-fri", "9am", "17:00")
    assert SendingWindow.parse("always", "17:00", "09:00").always  # no window, nothing to check
    assert SendingWindow.parse("mon", "07:15", "07:45").start == time(7, 15)


def test_the_recipients_zone_is_theirs_else_their_citys_else_the_senders() -> None:
    assert recipient_zone("Asia/Tokyo", "Berlin", "UTC") == TOKYO
    assert recipient_zone(None, "  tokyo ", "UTC") == TOKYO
    assert recipient_zone(None, "New York", "UTC") == NEW_YORK
    assert recipient_zone(None, "Atlantis", "Europe/Berlin") == BERLIN
    assert recipient_zone(None, None, "Europe/Berlin") == BERLIN
    # A zone nobody knows is passed over: the city's is next.
    assert recipient_zone("Mars/Olympus_Mons", "Tokyo", "UTC") == TOKYO
