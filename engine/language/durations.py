"""Durations as ops write them: ``30m``, ``12h``, ``5d``, ``2w``, ``5 business days``, ``P5D``.

Calendar durations become seconds; business days stay a count, because their length depends on
the calendar (workdays, holidays, time zone) and on the day they start from.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

from engine.errors import CsopsError

_UNITS = {
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_SHORT = re.compile(r"^\s*(\d+)\s*([a-z]+(?:\s+[a-z]+)?)\s*$")
_ISO = re.compile(r"^P(?=\d|T\d)(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
MAX_SECONDS = 10 * 366 * 86400  # ten years: longer than any contract a playbook follows


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed duration."""

    seconds: int = 0
    """Length in seconds for calendar durations; 0 for business days."""
    business_days: int = 0
    """A count of business days, resolved against the calendar when it is used."""
    text: str = ""
    """The duration as written."""


class DurationError(CsopsError, ValueError):
    """The text is not a duration; the message says what is accepted."""


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> Duration:
    """Parse a duration or raise :class:`DurationError` with a plain message (cached: books repeat them)."""
    raw = text
    text = text.strip()
    iso = _ISO.match(text) if text[:1] == "P" else None
    if iso:
        w, d, h, m, s = (int(g) if g else 0 for g in iso.groups())
        return _checked(raw, w * 604800 + d * 86400 + h * 3600 + m * 60 + s)
    if text[:1] == "P" and re.match(r"^P.*\d+[YM]", text.split("T")[0]):
        raise DurationError(f'"{raw}": months and years vary in length; use days or weeks (e.g. P30D)')
    short = _SHORT.match(text)  # case matters, as in the schema's pattern editors check against
    if not short and re.match(r"^\d+[.,]\d+\s*[a-z]", text):
        raise DurationError(f'"{raw}": use whole numbers in a smaller unit, e.g. 90m instead of 1.5h')
    if not short:
        raise DurationError(f'"{raw}" is not a duration; write e.g. 30m, 12h, 5d, 2w, "5 business days" or P5D')
    amount, unit = int(short.group(1)), short.group(2)
    unit = re.sub(r"\s+", " ", unit)
    if unit in ("business day", "business days"):
        if amount <= 0:
            raise DurationError(f'"{raw}" must be longer than zero')
        if amount > 2600:
            raise DurationError(f'"{raw}" is longer than ten years')
        return Duration(business_days=amount, text=raw)
    if unit not in _UNITS:
        near = difflib.get_close_matches(unit, [*_UNITS, "business days"], n=1, cutoff=0.6)
        if unit.startswith("mo") or unit in ("y", "yr", "year", "years"):
            hint = "months and years vary in length; use days (30d) or weeks"
        elif near:
            hint = f'did you mean "{amount} {near[0]}"?'
        else:
            hint = "use m, h, d, w, or business days"
        raise DurationError(f'"{raw}": unknown unit "{unit}"; {hint}')
    return _checked(raw, amount * _UNITS[unit])


def _checked(raw: str, seconds: int) -> Duration:
    if seconds <= 0:
        raise DurationError(f'"{raw}" must be longer than zero')
    if seconds > MAX_SECONDS:
        raise DurationError(f'"{raw}" is longer than ten years')
    return Duration(seconds=seconds, text=raw)
