"""What expressions see at run time, and deterministic evaluation.

Evaluation and rendering are pure functions of the context (engine/payloads/runcontext.py builds it from
the account as re-read before each step): effect activities render their step's texts, the
workflow evaluates waits and branches. Compiled templates are cached per text, which is safe
because compiling is deterministic. The business calendar lives in engine/language/workcalendar.py and is
re-exported here, so ``from engine.language.context import Calendar`` keeps working.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

from engine.language.expressions import ENV, BusinessDays, is_date_literal
from engine.language.sandbox import bounded
from engine.language.sizes import MAX_TEXT, LimitExceeded
from engine.language.workcalendar import Calendar, CalendarError

__all__ = ["DATE_FIELDS", "Calendar", "CalendarError", "as_datetime", "business_days_fn", "evaluate", "render",
           "render_json", "to_eval"]

DATE_FIELDS = ("renewal_date", "contract_start")


def business_days_fn(calendar: Calendar) -> Any:
    """``business_days(n)`` bound to the run's calendar (its workdays, holidays and time zone)."""
    def business_days(n: Any) -> BusinessDays:
        return BusinessDays(n, calendar)
    return business_days


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
    LimitExceeded past the limits of engine.language.sandbox (``seconds``: a wall-clock guard too, never in
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
