"""How the built-in CRM pages through its accounts for the daily scan and schedule ticks (``SQLCRM.list_accounts``).

A day's scan reads the accounts renewing on a few days: each page is the next ids of those days, read
from the (renewal_date, id) index day by day and merged by id, so a page reads about its own rows.
ORDER BY id over all the days made PostgreSQL walk the primary key through every account (200 ms a
page over a million), and ordering the date index's rows by id made every page read and sort all
the window's candidates again. Other filters (another date field, a long catch-up, none) walk the ids.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, select, union_all

from connectors import fields
from connectors.base import NUMBER_COLUMNS, NUMBER_OPERATORS, Account
from connectors.sqlcrm_models import AccountRow

ACCOUNTS = AccountRow.__table__.c
"""The table's columns: the page's SQL is Core, not ORM (the same SQL, without the ORM's compile step, and
without setting up every mapper on a worker's first read)."""
NARROW_DAYS = 8
"""Days of renewal dates (over all ranges) up to which a page is read day by day."""
CUSTOM_FIELD = re.compile(r"fields\.([A-Za-z_][A-Za-z0-9_]*)")
"""A custom field's name in a playbook (``fields.NAME``)."""


def accounts_query(after: str | None, limit: int, *, dates: Sequence[tuple[str, date, date]],
                   segments: Sequence[str], stages: Sequence[str], skip: Collection[str],
                   numbers: Sequence[tuple[str, str, float]] = ()) -> Any:
    """SQL for ``SQLCRM.list_accounts``: the next ``limit`` accounts in id order after ``after``.

    Raises:
        ValueError: a date field is neither a standard date field nor ``fields.NAME``; a number
            comparison of another column or with another operator.
    """
    unread = {column for name in skip for column in SKIP_COLUMNS.get(name, (name,))}
    cols = [c for c in ACCOUNTS if c.key not in unread or c.key == "id"]
    query = select(*cols)
    if after is not None:
        query = query.where(ACCOUNTS.id > after)
    if segments:
        query = query.where(ACCOUNTS.segment.in_(list(segments)))
    if stages:
        query = query.where(ACCOUNTS.lifecycle_stage.in_(list(stages)))
    for name, op, value in numbers:
        query = query.where(number_holds(name, op, value))
    days = renewal_days(dates)
    if days is not None:
        return day_by_day(query, days, limit)
    if dates:
        query = query.where(or_(*(date_between(name, first, last) for name, first, last in dates)))
    return query.order_by(ACCOUNTS.id).limit(limit)


ACCOUNT_FIELDS = frozenset(f.name for f in dataclasses.fields(Account))
JSON_FIELDS = ("usage", "fields")
"""The JSON columns: an account read without them holds empty ones."""
SKIP_COLUMNS = {"health": ("health_score", "health_band", "previous_health_score"), "people": ("owner_id",)}
"""The columns of a name in ``skip`` that is not a column's own (``AccountLister.list_accounts``): the
account's health, and its owner, read only for its people."""
EMPTY = {f.name: "" if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(Account)
         if f.name not in JSON_FIELDS}
"""What an account read without a column holds in its field (text, None, 0.0: as ``Account`` fills it in;
the name, which it requires, empty)."""


def accounts_of(result: Any) -> list[Account]:
    """The rows of ``result`` (columns of ``accounts``, named as Account's fields) as accounts; the fields
    of the columns left unread empty. Plain dicts: a Row answered getattr for a skipped JSON column by
    raising and catching an error, a third of a page."""
    keys = list(result.keys())
    rows = result.all()  # one fetch of the page: row by row, psycopg's fetchone per row cost more than the rows
    out = []
    if not ACCOUNT_FIELDS.issuperset(keys) or "id" not in keys:  # not the fields: Account() refuses
        for values in rows:
            row = dict(zip(keys, values, strict=True))
            row["usage"], row["fields"] = dict(row.get("usage") or {}), dict(row.get("fields") or {})
            out.append(Account(**row))
        return out
    empty = {name: value for name, value in EMPTY.items() if name not in keys}
    for values in rows:
        # The account's state is set at once. A frozen dataclass's __init__ sets each of its 14 fields
        # through object.__setattr__, which was most of the cost of turning a page of rows into accounts;
        # the instance is the same (equal, same fields) as Account(**row) with the unread fields empty.
        account = object.__new__(Account)
        state = account.__dict__
        state.update(empty)
        state.update(zip(keys, values, strict=True))
        usage, custom = state.get("usage"), state.get("fields")  # one new dict each, also for a column unread
        state["usage"], state["fields"] = dict(usage) if usage else {}, dict(custom) if custom else {}
        out.append(account)
    return out


def renewal_days(dates: Sequence[tuple[str, date, date]]) -> list[date] | None:
    """The renewal dates of a narrow window (a day's scan), or None to walk the ids (another field, or a
    long catch-up: many candidates a page then come from a short walk of the primary key)."""
    if not dates or any(name != "renewal_date" for name, _, _ in dates):
        return None
    if sum((last - first).days + 1 for _, first, last in dates) > NARROW_DAYS:
        return None
    return sorted({first + timedelta(days=i) for _, first, last in dates for i in range((last - first).days + 1)})


def day_by_day(query: Any, days: Sequence[date], limit: int) -> Any:
    """``query``'s next ``limit`` accounts in id order among those renewing on one of ``days``: a branch
    per day in id order (the index hands it from the cursor on), merged by id (PostgreSQL's Merge Append
    pulls from each branch only what the page takes)."""
    if not days:
        return query.where(false()).limit(limit)
    branches = [select(query.where(ACCOUNTS.renewal_date == day).order_by(ACCOUNTS.id).limit(limit).subquery())
                for day in days]
    merged = (branches[0] if len(branches) == 1 else union_all(*branches)).subquery()
    return select(merged).order_by(merged.c.id).limit(limit)


def number_holds(name: str, op: str, value: float) -> Any:
    """SQL: the numeric column ``name`` compares so with ``value``, or is null (``AccountLister``'s
    ``numbers``: the caller's matcher decides a null, which fails ``>`` but passes ``!=`` in Python)."""
    if name not in NUMBER_COLUMNS or op not in NUMBER_OPERATORS:
        raise ValueError(f"cannot compare {name!r} with {op!r}: numbers compare arr, health_score or "
                         "previous_health_score with >, >=, <, <=, == or !=")
    column = ACCOUNTS[name]
    holds = NUMBER_OPERATORS[op](column, value)
    return or_(column.is_(None), holds) if column.nullable else holds


def date_between(name: str, first: date, last: date) -> Any:
    """SQL: the date field ``name`` lies in [first, last] (custom fields hold ISO text, maybe with a time)."""
    if name in fields.DATE:
        return ACCOUNTS[name].between(first, last)
    if m := CUSTOM_FIELD.fullmatch(name):
        # ISO text sorts like the dates; "< the day after" also keeps a date-time on the last day.
        text = ACCOUNTS.fields[m.group(1)].as_string()
        return and_(text >= first.isoformat(), text < (last + timedelta(days=1)).isoformat())
    raise ValueError(f"{name!r} is not a date field of the account; use renewal_date, contract_start or fields.NAME")
