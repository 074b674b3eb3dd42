"""How ``Store.add_events`` writes a batch of events: one statement of plain rows, on a plain connection.

Storing events is the API's hot path (every event posted, bench/ingest.py). SQLAlchemy's insert of a
list of dicts (insertmanyvalues) ran each row's values through its bind processors (two
datetimes formatted in Python per row, each through ``UtcDateTime`` first), built the parameter
list, and did it inside an ORM session: about two thirds of the CPU an event cost to store. Here
the rows are tuples made once, and the SQL is the driver's own, with the same effect:

- SQLite: ``INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING RETURNING id``, at most
  ``SQLITE_ROWS`` rows a statement; times as text in the format SQLAlchemy's SQLite ``DATETIME``
  writes and reads (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), so every other query sees them alike.
- PostgreSQL: one ``INSERT ... SELECT FROM unnest(arrays) ... RETURNING id`` (six array
  parameters, whatever the batch's size), times as aware datetimes (timestamptz).

Only the rows that went in come back (``ON CONFLICT DO NOTHING``): an id stored before, by this
batch's earlier statements or by another writer, is not returned, which is how the caller tells
the one call that stored an event.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from engine.store.store_models import EventRow, to_json, utc

__all__ = ["SQLITE_ROWS", "EventLike", "event_row", "insert_events", "sqlite_moment", "sqlite_time"]

SQLITE_ROWS = 500
"""Most rows in one SQLite statement (3,000 parameters: far below SQLite's limit of 32,766)."""

_TABLE = EventRow.__tablename__
_COLUMNS = "id, type, account_id, occurred_at, received_at, data, attempts, last_error"
"""attempts and last_error given as 0 and '' (as the ORM's defaults did), not left to the table's defaults."""
_LONGEST = (("id", 255), ("type", 200), ("account_id", 255))
_PG = (f"INSERT INTO {_TABLE} ({_COLUMNS}) SELECT u.i, u.t, u.a, u.o, %s, u.d, 0, '' "
       "FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[]) "
       "WITH ORDINALITY AS u(i, t, a, o, d, n) ORDER BY u.n ON CONFLICT DO NOTHING RETURNING id")
"""The rows in the order given (sorted by id: two batches sharing ids take their row locks in the same order)."""


class EventLike(Protocol):
    """What the store takes as an event: an ``EventRecord``, an ``engine.triggers.signals.EventSignal``, or alike."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


def event_row(event: EventLike, *, text_times: bool) -> tuple[str, str, str, Any, str]:
    """(id, type, account_id, occurred_at, data as JSON); ``text_times``: the time as SQLite text (``sqlite_time``).

    Raises:
        ValueError: an empty or over-long id, type or account id, one holding NUL, or a naive time.
        TypeError: the data is not JSON.
    """
    ident, kind, account = event.id, event.type, event.account_id
    if not (ident and kind and account and len(ident) <= 255 and len(kind) <= 200 and len(account) <= 255
            and "\x00" not in ident and "\x00" not in kind and "\x00" not in account):
        for what, longest in _LONGEST:
            value = getattr(event, what)
            if not value or len(value) > longest:
                raise ValueError(f"an event's {what} must be 1 to {longest} characters, got {value!r:.80}")
            if "\x00" in value:  # PostgreSQL refuses it; SQLite's JSON functions would cut the id there (claims)
                raise ValueError(f"an event's {what} must not hold NUL, got {value!r:.80}")
    data = event.data if type(event.data) is dict else dict(event.data)
    when = utc(event.occurred_at, "occurred_at")
    return (ident, kind, account, sqlite_time(when) if text_times else when,
            to_json(data, f"the data of event {ident}"))


def sqlite_time(moment: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite ``DATETIME`` stores it: ``YYYY-MM-DD HH:MM:SS.ffffff`` (no zone)."""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_moment(text: str) -> datetime:
    """A time as read from SQLite's text (``sqlite_time``), aware in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def insert_events(conn: Connection, rows: Sequence[tuple[str, str, str, Any, str]], received_at: datetime) -> list[str]:
    """Insert ``event_row`` rows (times as text on SQLite) in the connection's transaction; the ids that went in."""
    if conn.dialect.name == "postgresql":
        columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
        return list(conn.exec_driver_sql(_PG, (received_at, *(list(c) for c in columns))).scalars().all())
    when = sqlite_time(received_at)
    inserted: list[str] = []
    for at in range(0, len(rows), SQLITE_ROWS):
        chunk = rows[at:at + SQLITE_ROWS]
        values = tuple([value for (i, t, a, o, d) in chunk for value in (i, t, a, o, when, d)])
        inserted += conn.exec_driver_sql(_sqlite_insert(len(chunk)), values).scalars().all()
    return inserted


@functools.lru_cache(maxsize=32)
def _sqlite_insert(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, 0, '')"] * rows)
    return f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING RETURNING id"
