"""The business calendar and its day arithmetic: the one implementation every part of the engine uses.

Durations (``due: 5 business days``, ``escalate.after``, waits, cooldowns, ``health_drop.within``),
``business_days(n)`` in expressions, milestone days of ``contract_milestone`` triggers, the daily
scan's date window and ``csops explain`` all count days here, so they can never disagree.

The rules (docs/triggers.md, "The calendar", repeats them for users):

- "Today" is the date of the moment in the calendar's time zone, not in UTC.
- N business days from a day are the N-th workday after it (before it for a negative N): the start
  day itself never counts, so a start on a Saturday plus one business day is the next workday.
  A workday is a day of ``workdays`` that is not in ``holidays``. Zero business days is the day
  itself.
- A moment plus N business days keeps its local wall-clock time on the new local date (09:00 stays
  09:00 across a daylight-saving change); a time that does not exist that day (a spring-forward
  gap) is read with the offset in force before the change.
- Calendar durations (``5d``, ``12h``) are exact lengths of time, not local days.

Pure and deterministic (no clock, no I/O): the workflow sandbox runs it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import CsopsError
from engine.language.durations import Duration
from engine.language.sizes import MAX_BUSINESS_DAYS, LimitExceeded

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names as ``csops.yaml`` writes them; the index is Python's ``weekday()`` (0 = Monday)."""


class CalendarError(CsopsError, ValueError):
    """A calendar or a business-day count that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Calendar:
    """Workdays, holidays and the time zone that business days and dates are counted in.

    Build it from ``csops.yaml`` with ``Calendar.from_dict(CalendarConfig.as_dict())``; runs carry
    ``as_dict()`` (``RunInput.calendar``, ``StepScope.calendar``) and rebuild it with ``from_dict``.
    """

    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    """The weekdays business days count, 0 = Monday .. 6 = Sunday; at least one."""
    holidays: frozenset[date] = frozenset()
    """Dates business days skip (local dates)."""
    timezone: str = "UTC"
    """The IANA time zone "today" and local times are taken in."""
    send_window: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """The default send window of email steps (engine/language/sendwindow.py form), None: send at once."""

    def __post_init__(self) -> None:
        if not self.workdays or not set(self.workdays) <= set(range(7)):
            raise CalendarError("calendar.workdays must name at least one day of mon..sun; "
                                f"got {sorted(self.workdays)}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"calendar.timezone {self.timezone!r} is not an IANA time zone "
                                "(e.g. Europe/Berlin, America/New_York, UTC)") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calendar:
        """A calendar from its dict form (``as_dict``, ``CalendarConfig.as_dict``): missing keys take the defaults.

        ``workdays`` may be numbers (0 = Monday) or names (``mon``); ``holidays`` ISO dates or dates.
        Other keys (e.g. ``ops_channel``) are ignored.

        Raises:
            CalendarError: an unknown day name, a holiday that is not a date, or an unknown time zone.
        """
        data = data or {}
        return cls(workdays=frozenset(_weekday(d) for d in data.get("workdays", (0, 1, 2, 3, 4))),
                   holidays=frozenset(_holiday(d) for d in data.get("holidays", ())),
                   timezone=str(data.get("timezone") or "UTC"),
                   send_window=dict(data["send_window"]) if data.get("send_window") else None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-safe form runs carry (workdays as numbers, holidays as sorted ISO dates)."""
        out = {"workdays": sorted(self.workdays), "holidays": sorted(d.isoformat() for d in self.holidays),
               "timezone": self.timezone}
        if self.send_window:  # only when set: runs without one carry the calendar they always did
            out["send_window"] = dict(self.send_window)
        return out

    @property
    def zone(self) -> ZoneInfo:
        """The time zone (ZoneInfo caches instances by name)."""
        return ZoneInfo(self.timezone)

    def today(self, now: datetime) -> date:
        """The local date of ``now`` in the calendar's zone (a naive ``now`` is taken as local already)."""
        return (now.astimezone(self.zone) if now.tzinfo else now).date()

    def midnight(self, day: date) -> datetime:
        """The start of ``day`` in the calendar's time zone."""
        return datetime.combine(day, time(0), tzinfo=self.zone)

    def is_workday(self, day: date) -> bool:
        """Whether business days count ``day``."""
        return day.weekday() in self.workdays and day not in self.holidays

    def shift(self, day: date, n: int) -> date:
        """The ``n``-th workday after ``day`` (before it when ``n`` < 0); ``day`` itself when ``n`` is 0.

        Whole weeks are jumped at once, so the cost does not grow with ``n`` (only with the holidays).

        Raises:
            OverflowError: the answer is past year 9999 or before year 1.
        """
        step, left = timedelta(days=1 if n > 0 else -1), abs(n)
        # Whole weeks first (each holds every workday once), leaving at least one day to count so the
        # answer is a workday; the holidays the jump passed are counted again one by one below.
        weeks = max(left - 1, 0) // len(self.workdays)
        if weeks:
            end = day + step * 7 * weeks
            low, high = (day, end) if n > 0 else (end, day)
            # The days the jump passed: between day and end, without day itself.
            skipped = sum(1 for h in self.holidays if h.weekday() in self.workdays and low <= h <= high and h != day)
            left += skipped - weeks * len(self.workdays)
            day = end
        while left:
            day += step
            if self.is_workday(day):
                left -= 1
        return day

    def add_business_days(self, start: datetime, n: int) -> datetime:
        """``start`` moved by ``n`` business days: the local date shifted, the local time of day kept.

        A naive ``start`` is taken as local and the answer is naive too.
        """
        if start.tzinfo is None:
            return datetime.combine(self.shift(start.date(), n), start.time())
        local = start.astimezone(self.zone)
        moved = datetime.combine(self.shift(local.date(), n), local.time(), tzinfo=self.zone)
        return moved.astimezone(start.tzinfo)

    def add(self, start: datetime, duration: Duration) -> datetime:
        """``start`` + ``duration``: business days as in ``add_business_days``, else the exact length."""
        if duration.business_days:
            return self.add_business_days(start, duration.business_days)
        return start + timedelta(seconds=duration.seconds)

    def sub(self, start: datetime, duration: Duration) -> datetime:
        """``start`` - ``duration`` (business days counted back over workdays, keeping the time of day)."""
        if duration.business_days:
            return self.add_business_days(start, -duration.business_days)
        return start - timedelta(seconds=duration.seconds)

    def move(self, day: date, n: int, business: bool) -> date:
        """``day`` moved by ``n`` calendar days, or by ``n`` workdays when ``business`` (milestone days)."""
        return self.shift(day, n) if business else day + timedelta(days=n)


class BusinessDaysTooFar(LimitExceeded, CalendarError):
    """``business_days(n)`` past the documented limit: an expression limit, and a calendar error."""


def business_count(n: Any) -> int:
    """``n`` of ``business_days(n)`` as a whole number within the limit.

    Raises:
        CalendarError: not a whole number, or ``|n|`` > MAX_BUSINESS_DAYS, with what to write instead.
    """
    if isinstance(n, bool) or not isinstance(n, (int, float, str)):
        raise CalendarError(f"business_days(n) needs a whole number of days; got {n!r}")
    try:
        value = float(n)
    except ValueError:
        raise CalendarError(f"business_days(n) needs a whole number of days; got {n!r}") from None
    if not value.is_integer():
        raise CalendarError(f"business_days(n) needs a whole number of days; got {n!r}")
    if abs(value) > MAX_BUSINESS_DAYS:
        raise BusinessDaysTooFar(f"business_days({int(value):,}) is too far: at most {MAX_BUSINESS_DAYS:,} "
                                 "business days (about 14 years) either way")
    return int(value)


def _weekday(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value.strip().lower()[:3] in WEEKDAYS:
        return WEEKDAYS.index(value.strip().lower()[:3])
    raise CalendarError(f"calendar.workdays: {value!r} is not a day; write mon, tue, wed, thu, fri, sat or sun")


def _holiday(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"calendar.holidays: {value!r} is not a date; write \"YYYY-MM-DD\"") from None

