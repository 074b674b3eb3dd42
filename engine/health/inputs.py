"""The measure values of accounts: from the CRM's account and from the engine's store.

Every source kind is read for all accounts at once with a few grouped queries (one over the
events table for every count, trend and days_since; one per latest; one over first uses), or
for one account with the same queries narrowed to it: the daily scan and the recompute after an
event share the code, and so cannot disagree. Windows end at ``now``: ``count usage.login within
30d`` counts events that occurred in (now - 30 days, now].

A value that cannot be read (no such field, text that is no number, no event) is missing (None),
never an error: the scorer decides what a missing value counts as.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from connectors.base import Account
from engine.language.health_model import HealthModel, Source
from engine.store.store import Store
from engine.store.store_models import EventRow, FirstUseRow, UtcDateTime, utc

__all__ = ["Raw", "event_columns", "field_value", "gather", "number", "read_raw", "since", "values"]

Raw = dict[str, dict[tuple[str, str, int], Any]]
"""The store's answers per account id (``read_raw``), for ``values``."""
_TRUE, _FALSE = frozenset({"true", "yes", "y"}), frozenset({"false", "no", "n"})


def number(value: Any) -> float | None:
    """A value as a number: numbers, true/false (1/0), and text holding either; None for anything else."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in _TRUE or text in _FALSE:
            return 1.0 if text in _TRUE else 0.0
        try:
            found = float(text.rstrip("%"))
        except ValueError:
            return None
        return found if math.isfinite(found) else None
    return None


def field_value(account: Account, name: str, today: date) -> float | None:
    """An account field as a number (dates: days from ``today``, negative in the past); None when missing."""
    if name == "arr":
        return number(account.arr)
    if name in ("renewal_date", "contract_start"):
        day = getattr(account, name)
        return None if day is None else float((day - today).days)
    holder = account.fields if name.startswith("fields.") else account.usage
    return number(holder.get(name.split(".", 1)[1]))


def _field(account: Account, src: Source, today: date) -> float | None:
    value = field_value(account, src.name, today)
    if not src.per or value is None:
        return value
    per = field_value(account, src.per, today)
    return None if not per else value / per


def event_columns(model: HealthModel, now: datetime) -> tuple[list[Any], list[tuple[str, str, int]], set[str]]:
    """The aggregate columns for every count, trend and days_since source (deduplicated), and their types."""
    cols: list[Any] = []
    keys: list[tuple[str, str, int]] = []
    types: set[str] = set()

    def add(kind: str, name: str, days: int, expr: Any) -> None:
        if (kind, name, days) not in keys:
            keys.append((kind, name, days))
            cols.append(expr.label(f"c{len(cols)}"))
            types.add(name)

    def window(name: str, end: datetime, days: int) -> Any:
        inside = and_(EventRow.type == name, EventRow.occurred_at > end - timedelta(days=days),
                      EventRow.occurred_at <= end)
        return func.sum(case((inside, 1), else_=0))

    for m in model.measures:
        src = m.source
        if src.kind in ("count", "trend"):
            add("count", src.name, src.days, window(src.name, now, src.days))
        if src.kind == "trend":
            add("before", src.name, src.days, window(src.name, now - timedelta(days=src.days), src.days))
        if src.kind == "days_since":
            last = case((and_(EventRow.type == src.name, EventRow.occurred_at <= now), EventRow.occurred_at))
            add("last", src.name, 0, func.max(last, type_=UtcDateTime))
    return cols, keys, types


def _scoped(query: Any, column: Any, only: str | None) -> Any:
    return query if only is None else query.where(column == only)


def _read(s: Session, model: HealthModel, now: datetime, only: str | None) -> Raw:
    """Per account: each source's raw answer from the store, keyed by (kind, name, days)."""
    out: dict[str, dict[tuple[str, str, int], Any]] = {}
    cols, keys, types = event_columns(model, now)
    if cols:
        query = _scoped(select(EventRow.account_id, *cols).where(EventRow.type.in_(sorted(types))),
                        EventRow.account_id, only).group_by(EventRow.account_id)
        for row in s.execute(query):
            out.setdefault(row[0], {}).update(zip(keys, row[1:], strict=True))
    for src in {m.source for m in model.measures if m.source.kind == "latest"}:
        ranked = _scoped(select(EventRow.account_id, EventRow.data, func.row_number().over(
            partition_by=EventRow.account_id, order_by=(EventRow.occurred_at.desc(), EventRow.id.desc())).label("rn"))
            .where(EventRow.type == src.name, EventRow.occurred_at <= now), EventRow.account_id, only).subquery()
        for account_id, data in s.execute(select(ranked.c.account_id, ranked.c.data).where(ranked.c.rn == 1)):
            out.setdefault(account_id, {})[("latest", src.name, 0)] = data
    for src in {m.source for m in model.measures if m.source.kind == "features_used"}:
        query = _scoped(select(FirstUseRow.account_id, func.count(func.distinct(FirstUseRow.name))).where(
            FirstUseRow.kind == "feature", FirstUseRow.name.in_(list(src.features)), FirstUseRow.first_at <= now),
            FirstUseRow.account_id, only).group_by(FirstUseRow.account_id)
        for account_id, used in s.execute(query):
            out.setdefault(account_id, {})[("features", ",".join(src.features), 0)] = used
    return out


def _value(src: Source, raw: Mapping[tuple[str, str, int], Any], account: Account, now: datetime) -> float | None:
    if src.kind == "field":
        return _field(account, src, now.date())
    if src.kind == "count":
        return float(raw.get(("count", src.name, src.days)) or 0)
    if src.kind == "trend":
        before = raw.get(("before", src.name, src.days)) or 0
        return None if not before else float(raw.get(("count", src.name, src.days)) or 0) / before
    if src.kind == "days_since":
        return since(raw.get(("last", src.name, 0)), now)
    if src.kind == "latest":
        data = raw.get(("latest", src.name, 0))
        found = json.loads(data).get(src.value) if data else None
        return None if isinstance(found, bool) else number(found) if isinstance(found, int | float) else None
    used = raw.get(("features", ",".join(src.features), 0)) or 0
    return used / len(src.features)


def since(last: Any, now: datetime) -> float | None:
    """Whole days from ``last`` (a stored time, or None) to ``now``, counted on whole seconds (as SQL counts them)."""
    if last is None:
        return None
    then = utc(last if isinstance(last, datetime) else _when(last))
    return float((int(now.timestamp()) - int(then.timestamp())) // 86400)


def _when(text: str) -> datetime:
    """A time SQLite handed back as text from an aggregate (stored in UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def values(model: HealthModel, account: Account, raw: Mapping[tuple[str, str, int], Any],
           now: datetime) -> dict[str, float | None]:
    """Every measure's value for one account from the store's raw answers."""
    return {m.name: _value(m.source, raw, account, now) for m in model.measures}


async def read_raw(store: Store, model: HealthModel, now: datetime, *, only: str | None = None) -> Raw:
    """The store's answers for every source of the model: for all accounts, or the account ``only``."""
    at = utc(now, "now")
    return await store.db.read(lambda s: _read(s, model, at, only))


async def gather(store: Store, model: HealthModel, accounts: Sequence[Account], now: datetime, *,
                 only: str | None = None) -> dict[str, dict[str, float | None]]:
    """Every measure's value for each account, by account id.

    With ``only`` (an account id) the store is read for that account alone: the recompute after an
    event. Without it the store is read for all accounts at once: the daily scan and the bench.
    """
    raw = await read_raw(store, model, now, only=only)
    return {a.id: values(model, a, raw.get(a.id, {}), utc(now)) for a in accounts}
