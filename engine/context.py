"""What expressions see at run time, the business calendar, and deterministic evaluation.

Evaluation and rendering are pure functions of the context (engine/runcontext.py builds it from
the account as re-read before each step): effect activities render their step's texts, the
workflow evaluates waits and branches. Compiled templates are cached per text, which is safe
because compiling is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from engine.durations import Duration
from engine.expressions import ENV, BusinessDays, is_date_literal
from engine.sandbox import bounded
from engine.sizes import MAX_TEXT, LimitExceeded

DATE_FIELDS = ("renewal_date", "contract_start")


@dataclass(frozen=True)
class Calendar:
    """Workdays, holidays and the time zone that business days and dates are counted in."""

    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    holidays: frozenset[date] = frozenset()
    timezone: str = "UTC"
    _zone: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calendar:
        return cls(workdays=frozenset(data.get("workdays", (0, 1, 2, 3, 4))),
                   holidays=frozenset(date.fromisoformat(d) for d in data.get("holidays", ())),
                   timezone=data.get("timezone", "UTC"))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_workday(self, day: date) -> bool:
        return day.weekday() in self.workdays and day not in self.holidays

    def add(self, start: datetime, duration: Duration) -> datetime:
        """``start`` + ``duration``; business days skip non-workdays, keeping the time of day."""
        if not duration.business_days:
            return start + timedelta(seconds=duration.seconds)
        local = start.astimezone(self.zone)
        day, left = local.date(), duration.business_days
        while left:
            day += timedelta(days=1)
            if self.is_workday(day):
                left -= 1
        return datetime.combine(day, local.timetz()).astimezone(start.tzinfo)

    def midnight(self, day: date) -> datetime:
        """The start of ``day`` in the calendar's time zone."""
        return datetime.combine(day, time(0), tzinfo=self.zone)


def business_days_fn(calendar: Calendar) -> Any:
    """``business_days(n)`` bound to the run's calendar."""
    def make(n: int) -> BusinessDays:
        shifted = BusinessDays(n, calendar.holidays)
        return shifted
    return make


def to_eval(data: dict[str, Any]) -> dict[str, Any]:
    """Turn the JSON context from activities into what expressions compare: dates as dates."""
    out = dict(data)
    account = dict(out.get("account") or {})
    for name in DATE_FIELDS:
        if isinstance(account.get(name), str):
            account[name] = date.fromisoformat(account[name])
    out["account"] = account
    return out


@lru_cache(maxsize=2048)
def _expression(src: str) -> Any:
    return ENV.compile_expression(src, undefined_to_none=False)


@lru_cache(maxsize=2048)
def _template(src: str) -> Any:
    return ENV.from_string(src)


def evaluate(src: str, ctx: dict[str, Any], seconds: float | None = None) -> Any:
    """Evaluate an expression; a bare ISO date is that date. Raises on undefined names, and
    LimitExceeded past the limits of engine.sandbox (``seconds``: a wall-clock guard too, never in
    a workflow)."""
    if is_date_literal(src):
        text = src.strip()
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
    return bounded(lambda: _expression(src)(**ctx), seconds)


def render(src: str, ctx: dict[str, Any], seconds: float | None = None) -> str:
    """Render a template; raises on undefined names, and LimitExceeded past the limits (a result
    longer than MAX_TEXT characters among them)."""
    if "{" not in src:
        return src
    out = str(bounded(lambda: _template(src).render(**ctx), seconds))
    if len(out) > MAX_TEXT:
        raise LimitExceeded(f"a rendered text of {len(out):,} characters; the limit is {MAX_TEXT:,}")
    return out


def render_json(value: Any, ctx: dict[str, Any], seconds: float | None = None) -> Any:
    """Render every string inside a JSON value (http bodies, Block Kit blocks)."""
    if isinstance(value, str):
        return render(value, ctx, seconds)
    if isinstance(value, list):
        return [render_json(v, ctx, seconds) for v in value]
    if isinstance(value, dict):
        return {k: render_json(v, ctx, seconds) for k, v in value.items()}
    return value


def as_datetime(value: Any, calendar: Calendar) -> datetime:
    """A wait-until or due value as an aware datetime: a date means its midnight in the calendar."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=calendar.zone)
    if isinstance(value, date):
        return calendar.midnight(value)
    if isinstance(value, str):
        return as_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value
                           else date.fromisoformat(value), calendar)
    raise ValueError(f"expected a date, got {value!r}")
