"""How the command line prints numbers, counts and verdicts: money, plurals, and colour on a terminal only.

Colour follows https://no-color.org: never when ``NO_COLOR`` is set (to anything), never when the
stream is not a terminal (a pipe, a file, a test's capture).
"""

from __future__ import annotations

import os
import re
from typing import TextIO

__all__ = ["colour", "colour_verdicts", "count", "green", "has_control", "money", "red", "shown", "yellow"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str) -> bool:
    """Whether the text holds a control character or a line separator (C0, DEL, C1, U+2028/2029), refused in ids
    from outside (events, CSV rows): SQLite's JSON functions end a text at NUL (such an event was stored and never
    claimed), PostgreSQL refuses NUL in text, and a newline in an id forges lines of output and logs.

    ``isprintable()`` answers the usual id in tens of ns (the API asks per event); only text it refuses (which
    also covers printable-but-odd characters such as a no-break space) is searched."""
    return not text.isprintable() and _CONTROL.search(text) is not None


def money(amount: float | int | None, currency: str = "$") -> str:
    """``180000.0`` as ``$180,000``; cents only when there are any (``$1,234.50``)."""
    if amount is None:
        return "(none)"
    whole = float(amount).is_integer()
    return f"{currency}{amount:,.0f}" if whole else f"{currency}{amount:,.2f}"


def shown(value: object) -> str:
    """A value from outside (an event's id) for one line of output: as it is when printable, else quoted with
    escapes, so a newline, tab, NUL or terminal escape in it cannot break or forge a line."""
    return value if isinstance(value, str) and value.isprintable() else repr(value)


def count(n: int, word: str, plural: str = "") -> str:
    """``1 day``, ``2 days``, ``0 rows``; ``plural`` when adding an s is wrong (``1 entry``/``2 entries``)."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def colour(text: str, code: str, stream: TextIO) -> str:
    """``text`` in the ANSI colour ``code`` when ``stream`` is a terminal and NO_COLOR is unset."""
    if "NO_COLOR" in os.environ or not _tty(stream):
        return text
    return f"\033[{code}m{text}\033[0m"


def red(text: str, stream: TextIO) -> str:
    """An error or a failure, in bold red on a terminal."""
    return colour(text, "1;31", stream)


def yellow(text: str, stream: TextIO) -> str:
    """A warning, in yellow on a terminal."""
    return colour(text, "33", stream)


def green(text: str, stream: TextIO) -> str:
    """An OK, in green on a terminal."""
    return colour(text, "32", stream)


def colour_verdicts(text: str, stream: TextIO) -> str:
    """``[error]`` in red and ``[warning]`` in yellow within ``text`` (problem lines), on a terminal."""
    return text.replace("[error]", red("[error]", stream)).replace("[warning]", yellow("[warning]", stream))


def _tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False
