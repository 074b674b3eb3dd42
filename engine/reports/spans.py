"""Spans and starting points of reports: ``--since 90d`` (or a date), ``--tolerance 15m``.

The commands (engine/cli/cli_reports.py) take them as argparse types; the routes
(engine/api/api_reports.py) read the same text from a query parameter, so both say the same.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

__all__ = ["LONGEST", "parse_since", "parse_span"]

_SPAN = re.compile(r"^(\d+)([mhdw])$")
LONGEST = timedelta(days=36525)
"""The longest span taken (100 years)."""
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_span(text: str) -> timedelta:
    """``90d``, ``12w``, ``36h`` or ``15m`` as a timedelta.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    found = _SPAN.match(text.strip())
    span = int(found.group(1)) * _UNIT[found.group(2)] if found and len(found.group(1)) <= 7 else None
    if span is None or not timedelta(0) < span <= LONGEST:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span: write a positive number and a unit m, h, d or w "
                                         "(e.g. 90d), at most 100 years")
    return span


def parse_since(text: str) -> datetime:
    """A span back from now (``90d``) or a date or time (``2026-01-31``, ``2026-01-31T09:00:00Z``), aware in UTC.

    Raises:
        argparse.ArgumentTypeError: neither.
    """
    if _SPAN.match(text.strip()):
        return datetime.now(UTC) - parse_span(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a span (90d) nor a date (2026-01-31)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
