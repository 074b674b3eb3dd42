"""The standard account fields a playbook's ``update`` step may write, and how a written value is
checked and typed: one rule for every CRM connector, so the same playbook value is accepted or
refused alike whichever CRM is configured (each connector then writes it in its own format)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from connectors.base import PermanentError

HEALTH_BANDS = ("", "green", "yellow", "red")
TEXT = ("name", "segment", "lifecycle_stage", "renewal_status", "health_band")
INT = ("health_score", "previous_health_score")
DATE = ("renewal_date", "contract_start")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise PermanentError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise PermanentError(f"{name} must be one of {', '.join(a or '(empty)' for a in allowed)}, not {value!r}")


def kind(name: str) -> str:
    """What a standard field holds, in words (for error messages)."""
    if name in TEXT:
        return "non-empty text" if name == "name" else "text"
    return {"arr": "number"}.get(name, "ISO date (YYYY-MM-DD)" if name in DATE else "whole number 0-100")


def coerce(name: str, value: Any) -> Any:
    """A standard field's value (``owner`` aside) in its type: text, int, float, date or None.

    Raises:
        PermanentError: the value is not one of that field.
    """
    bad = PermanentError(f"{name}: {value!r} is not a valid {kind(name)}")
    if name in TEXT:
        if not isinstance(value, str) or (name == "name" and not value.strip()):
            raise bad
        if name == "health_band":
            check_choice(name, value, HEALTH_BANDS)
        return value
    if value is None or value == "":
        if name == "arr":
            raise bad
        return None
    if isinstance(value, bool):
        raise bad
    if name in DATE:
        if isinstance(value, datetime) or not isinstance(value, date | str):
            raise bad
        try:
            return value if isinstance(value, date) else date.fromisoformat(value.strip())
        except ValueError:
            raise bad from None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number):
        raise bad
    if name == "arr":
        return number
    if not number.is_integer() or not 0 <= number <= 100:
        raise bad
    return int(number)
