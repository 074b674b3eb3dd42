"""Send windows: when an email may go out, in the recipient's own time zone.

A window is days of the week and opening hours (``{days: [mon, tue, wed, thu, fri], hours:
09:00-17:00}``); the closing time is not included. An ``email`` step's ``send_window``, else the
calendar's default (csops.yaml ``calendar.send_window``), applies. The zone is the contact's
``timezone``, else the account's ``fields.timezone``, else the calendar's (engine/runtime/activities.py,
``email_window``). A send outside the window waits (a durable workflow timer) for the next opening,
computed here on wall-clock times in that zone, so a DST change moves the opening with the clock
(09:00 stays 09:00 local).

Pure and deterministic: the workflow calls :func:`next_opening` with workflow time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["DAYS", "SendWindow", "next_opening"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, kw_only=True)
class SendWindow:
    """Days (0 = Monday) and opening hours, as minutes after local midnight."""

    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    """The days mail may go out."""
    start: int = 9 * 60
    """Opening, minutes after midnight."""
    end: int = 17 * 60
    """Closing (excluded), minutes after midnight; up to 24:00."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SendWindow:
        """From the YAML form (``days`` names, ``hours`` ``HH:MM-HH:MM``), as the schema checked it.

        Raises:
            ValueError: the hours do not read, or close before they open.
        """
        opening, _, closing = str(data.get("hours", "09:00-17:00")).partition("-")
        start, end = _minutes(opening), _minutes(closing)
        if end <= start:
            raise ValueError(f"send window hours {data.get('hours')!r} close before they open; write e.g. 09:00-17:00")
        days = tuple(sorted({DAYS.index(d) if isinstance(d, str) else int(d) for d in data.get("days", DAYS[:5])}))
        return cls(days=days, start=start, end=end)

    def as_dict(self) -> dict[str, Any]:
        """The YAML form (goes into a run's calendar)."""
        return {"days": [DAYS[d] for d in self.days], "hours": f"{_hhmm(self.start)}-{_hhmm(self.end)}"}

    def describe(self) -> str:
        """For people: ``mon-fri 09:00-17:00``."""
        names = [DAYS[d] for d in self.days]
        span = f"{names[0]}-{names[-1]}" if self.days == tuple(range(self.days[0], self.days[-1] + 1)) and \
            len(names) > 2 else ",".join(names)
        return f"{span} {_hhmm(self.start)}-{_hhmm(self.end)}"


def _minutes(text: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    if not hours.isdigit() or not minutes.isdigit():
        raise ValueError(f"{text!r} is not a time HH:MM")
    return int(hours) * 60 + int(minutes)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The instant a local wall-clock time happens. A time the clocks skip (02:30 on a spring-forward
    night) is moved forward by the skipped hour (03:30), as RFC 5545 reads it; a time that happens
    twice (an autumn night) is its first happening."""
    if minutes >= 24 * 60:
        return _local(day + timedelta(days=1), minutes - 24 * 60, zone)
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone).astimezone(UTC)


def next_opening(now: datetime, window: SendWindow, zone: ZoneInfo) -> datetime:
    """``now`` (UTC) when it is inside the window in ``zone``, else the next opening (UTC)."""
    if not window.days:
        raise ValueError("a send window needs at least one day")
    today = now.astimezone(zone).date()
    for ahead in range(-1, 9):  # -1: a window closing after midnight may still be open from yesterday
        day = today + timedelta(days=ahead)
        if day.weekday() not in window.days:
            continue
        opening, closing = _local(day, window.start, zone), _local(day, window.end, zone)
        if closing <= now:
            continue
        return max(opening, now.astimezone(UTC))
    raise AssertionError("a week always holds an opening")  # pragma: no cover
