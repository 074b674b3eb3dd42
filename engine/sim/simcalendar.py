"""The business calendar of a simulation or a playbook test, and where it comes from.

The calendar is the configured one (``calendar:`` of csops.yaml, read by engine.cli.cli_sim.configured),
with a calendar file (``--calendar FILE``) laid over it and then a test file's and a test case's ``calendar:``: each
layer replaces the keys it gives (``timezone``, ``workdays``, ``holidays``) and keeps the others.
A calendar written in a file is checked here, every problem with its line and column.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.config.config import WEEKDAYS
from engine.errors import CsopsError
from engine.language.context import Calendar
from engine.language.problems import Problem, problem_at
from engine.language.yamlpos import Document, Path, read

KEYS = ("timezone", "workdays", "holidays")


class CalendarError(CsopsError, ValueError):
    """A calendar file cannot be used: its problems, each with line and column."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def check_calendar(doc: Document, p: Path, data: Any, problems: list[Problem]) -> dict[str, Any] | None:
    """The calendar at ``p`` of ``doc`` in ``Calendar.from_dict``'s form (only the keys it gives), or
    None with its problems added to ``problems``."""
    before = len(problems)

    def bad(at: Path, rule: str, message: str, hint: str = "", key: bool = False) -> None:
        problems.append(problem_at(doc, at, rule, message, hint, key=key))

    if not isinstance(data, dict):
        bad(p, "calendar-type", "a calendar is a mapping of timezone, workdays and holidays",
            "e.g. {timezone: Europe/Berlin, workdays: [mon, tue, wed, thu, fri], holidays: [2027-12-24]}")
        return None
    out: dict[str, Any] = {}
    for key, value in data.items():
        at = (*p, key)
        if key not in KEYS:
            near = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.6)
            bad(at, "calendar-unknown-key", f"unknown key {key} in the calendar",
                f'did you mean "{near[0]}"?' if near else f"known keys: {', '.join(KEYS)}", key=True)
        elif key == "timezone":
            if not isinstance(value, str) or not _zone(value):
                bad(at, "calendar-value", f"timezone: {value!r} is not a time zone",
                    "an IANA time zone name such as Europe/Berlin, America/New_York or UTC")
            else:
                out["timezone"] = value
        elif not isinstance(value, list):
            bad(at, "calendar-type", f"{key}: must be a list",
                "e.g. [mon, tue, wed, thu, fri]" if key == "workdays" else "e.g. [2027-12-24, 2027-12-31]")
        elif key == "workdays":
            days = []
            for i, day in enumerate(value):
                if day not in WEEKDAYS:
                    bad((*at, i), "calendar-value", f"workdays: {day!r} is not a day", f"one of {', '.join(WEEKDAYS)}")
                else:
                    days.append(WEEKDAYS.index(day))
            if not value:
                bad(at, "calendar-value", "workdays: is empty", "list at least one day: business days would never come")
            out["workdays"] = sorted(set(days))
        else:
            dates = []
            for i, day in enumerate(value):
                parsed = _date(day)
                if parsed is None:
                    bad((*at, i), "calendar-value", f"holidays: {day!r} is not a date", "write it as 2027-12-24")
                else:
                    dates.append(parsed.isoformat())
            out["holidays"] = sorted(set(dates))
    return None if len(problems) > before else out


def load_calendar_file(path: str) -> dict[str, Any]:
    """A calendar file (YAML or JSON: timezone, workdays, holidays) in ``Calendar.from_dict``'s form.

    Raises:
        CalendarError: the file has problems (each with line and column).
        OSError: the file cannot be read.
    """
    doc = read(path)
    problems = list(doc.problems)
    found = None if problems else check_calendar(doc, (), doc.data if doc.data is not None else {}, problems)
    if found is None:
        raise CalendarError(f"{path}: {len(problems)} problem(s)", problems)
    return found


def layered(*layers: Mapping[str, Any] | None) -> Calendar:
    """The calendar with each layer's keys laid over the ones before."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return Calendar.from_dict(merged)


def as_dict(calendar: Calendar) -> dict[str, Any]:
    """A Calendar as runs take it (RunInput.calendar; with its default send window, when it has one)."""
    return calendar.as_dict()


def _zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if len(str(value)) == 10 else None
    except ValueError:
        return None


def parse_start(text: str) -> datetime:
    """``YYYY-MM-DD`` (09:00 UTC that day) or an ISO time (UTC unless it says otherwise)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text}: write a date (2027-01-04) or a time (2027-01-04T09:00:00Z)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
