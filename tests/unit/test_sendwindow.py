"""engine.language.sendwindow: the next opening of a send window on wall-clock times in a zone, DST included."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from engine.language.sendwindow import SendWindow, next_opening

WEEKDAYS = SendWindow()
NY, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("now", "zone", "expected"), [
    # inside: at once
    (utc(2026, 3, 9, 14, 0), NY, utc(2026, 3, 9, 14, 0)),
    # before opening the same day
    (utc(2026, 3, 10, 11, 0), NY, utc(2026, 3, 10, 13, 0)),
    # closing is excluded: 17:00 EDT sharp waits for the next day
    (utc(2026, 3, 10, 21, 0), NY, utc(2026, 3, 11, 13, 0)),
    # Friday evening before the US spring-forward Sunday: Monday 09:00 EDT = 13:00 UTC (not 14:00)
    (utc(2026, 3, 6, 23, 0), NY, utc(2026, 3, 9, 13, 0)),
    # Friday evening before the EU fall-back Sunday: Monday 09:00 CET = 08:00 UTC (not 07:00)
    (utc(2026, 10, 23, 17, 0), BERLIN, utc(2026, 10, 26, 8, 0)),
    # the same Friday in New York (its change comes a week later): 13:00 UTC
    (utc(2026, 10, 23, 22, 0), NY, utc(2026, 10, 26, 13, 0)),
])
def test_next_opening(now: datetime, zone: ZoneInfo, expected: datetime) -> None:
    assert next_opening(now, WEEKDAYS, zone) == expected


def test_a_time_the_clocks_skip_is_moved_forward_by_the_skipped_hour() -> None:
    sunday_night = SendWindow.from_dict({"days": ["sun"], "hours": "02:30-05:00"})
    # 2026-03-08 02:30 does not exist in New York: 03:30 EDT = 07:30 UTC
    assert next_opening(utc(2026, 3, 7, 12, 0), sunday_night, NY) == utc(2026, 3, 8, 7, 30)


def test_the_yaml_form_round_trips_and_bad_hours_are_refused() -> None:
    window = SendWindow.from_dict({"days": ["fri", "mon"], "hours": "08:15-24:00"})
    assert (window.days, window.start, window.end) == ((0, 4), 8 * 60 + 15, 24 * 60)
    assert SendWindow.from_dict(window.as_dict()) == window
    assert window.describe() == "mon,fri 08:15-24:00"
    with pytest.raises(ValueError, match="close before they open"):
        SendWindow.from_dict({"hours": "17:00-09:00"})


def test_a_window_open_until_midnight_counts_today() -> None:
    late = SendWindow.from_dict({"days": ["mon"], "hours": "20:00-24:00"})
    assert next_opening(utc(2026, 3, 10, 3, 30), late, NY) == utc(2026, 3, 10, 3, 30)  # Mon 23:30 EDT
    assert next_opening(utc(2026, 3, 10, 4, 0), late, NY) == utc(2026, 3, 17, 0, 0)  # Tue 00:00: next Monday 20:00
