"""Reading one cell of an import CSV as a field value; each raises ``Bad`` with words for the user."""

from __future__ import annotations

import math
import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import CsopsError
from engine.language.textfmt import has_control

__all__ = ["Bad", "a_date", "amount", "an_id", "band", "email_address", "flag", "required", "score", "zone"]

TRUE, FALSE = ("true", "yes", "1", "y"), ("false", "no", "0", "n", "")
AMOUNT = re.compile(r"[$€£]?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
"""120000, 120000.50, 120,000 or $120,000: a comma only ever separates thousands (never 1.234,56)."""


class Bad(CsopsError):
    """A cell that cannot be read as its field: ``why`` says what is wrong."""

    def __init__(self, column: str, why: str) -> None:
        super().__init__(why)
        self.column, self.why = column, why


def required(value: str) -> str:
    if not value:
        raise Bad("", "is empty; it is required")
    return value


def an_id(value: str) -> str:
    """An id (of an account, contact or user): required, at most 255 characters, printable."""
    required(value)
    if len(value) > 255:
        raise Bad("", f"has {len(value)} characters; an id has at most 255")
    if has_control(value):
        raise Bad("", f"{value!r:.80} holds control characters (NUL, tab, newline...); an id must be printable text")
    return value


def email_address(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise Bad("", f"{value!r} is not an email address" if value else "is empty; it is required")
    return value


def a_date(value: str) -> date | None:
    if not value:
        return None
    try:  # fromisoformat alone would also take 20270301 and 2027-W09-1
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise Bad("", f"{value!r} is not a date; write YYYY-MM-DD")


def amount(value: str) -> float:
    if not value:
        return 0.0
    if value.startswith("-"):
        raise Bad("", f"{value!r} is not an amount of 0 or more")
    if not AMOUNT.fullmatch(value):
        raise Bad("", f"{value!r} is not a number; write an amount like 120000 or 120000.50")
    number = float(re.sub(r"[$€£,\s]", "", value))
    if not math.isfinite(number):
        raise Bad("", f"{value!r} is not an amount of 0 or more")
    return number


def score(value: str) -> int | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise Bad("", f"{value!r} is not a number") from None
    if not number.is_integer() or not 0 <= number <= 100:
        raise Bad("", f"{value!r} is not a whole number 0-100")
    return int(number)


def band(value: str) -> str:
    if value.lower() not in ("", "green", "yellow", "red"):
        raise Bad("", f"{value!r} is not a health band; write green, yellow or red")
    return value.lower()


def flag(value: str) -> bool:
    if value.lower() not in TRUE + FALSE:
        raise Bad("", f"{value!r} is not true or false")
    return value.lower() in TRUE


def zone(value: str) -> str:
    try:
        ZoneInfo(value or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise Bad("", f"{value!r} is not a time zone; write an IANA name like Europe/Berlin") from None
    return value or "UTC"
