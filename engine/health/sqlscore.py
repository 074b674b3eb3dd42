"""The full recompute as one SQL statement, when the CRM is the built-in one in the store's database (SQLite or
PostgreSQL).

The daily scan recomputes every account. With the built-in CRM sharing the store's database
(the default layout), the model is compiled into one query over the accounts, events, first uses
and the last recorded scores: every measure's value, its points, the weights of the account's
segment and stage, the bucket averages and the score, with the same arithmetic in the same order
as engine.health.score, so the two give the same score to the last bit (tests/unit/health/
test_sqlscore.py checks it). Python then rounds, bands and compares with the last score; only the
accounts whose score changed get their breakdown, through the Python path. Other CRMs use the
Python path (engine.health.recompute.recompute_all).

Text in custom fields is read as engine.health.inputs.number reads it: on SQLite a function
registered on the connection calls that very function; on PostgreSQL a regular expression reads
plain decimal numbers (sign, digits, point, exponent, trailing %) and true/false/yes/no/y/n, which
leaves out only what Python's float() alone also accepts (``1_000``, digits of other scripts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Float, Integer, and_, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import Session

from engine.health.inputs import event_columns, number
from engine.health.score import points, weights_for
from engine.language.health_model import HealthModel, Measure, Source
from engine.store.store import Store
from engine.store.store_models import EventRow, FirstUseRow, UtcDateTime, utc

__all__ = ["scores", "usable"]

def usable(crm: Any, store: Store) -> bool:
    """Whether the SQL path applies: the built-in CRM in the store's own database (SQLite or PostgreSQL)."""
    from connectors.sqlcrm import SQLCRM

    return isinstance(crm, SQLCRM) and str(crm.db.engine.url) == str(store.db.engine.url)


def _text_number(value: Any) -> float | None:
    return number(value)


_PG_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?%*$"
_SPACE = " \t\n\r\f\v"


class _Sql:
    """The few expressions SQLite and PostgreSQL spell differently."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def json_number(self, column: Any, key: str) -> Any:
        """number() of one key of a JSON text column: a simple CASE, so the JSON type is read once."""
        if not self.pg:
            path = f'$."{key}"'
            raw = func.json_extract(column, path)
            return case({"integer": cast(raw, Float), "real": cast(raw, Float), "true": literal(1.0),
                         "false": literal(0.0), "text": func.csops_number(raw)}, value=func.json_type(column, path),
                        else_=None)
        doc = cast(column, JSON)
        raw = doc[key].astext
        text = func.btrim(raw, _SPACE)
        word = func.lower(text)
        parsed = case((word.in_(("true", "yes", "y")), literal(1.0)), (word.in_(("false", "no", "n")), literal(0.0)),
                      (text.regexp_match(_PG_NUMBER), cast(func.rtrim(text, "%"), Float)), else_=None)
        return case({"number": cast(raw, Float), "boolean": case((raw == "true", literal(1.0)), else_=literal(0.0)),
                     "string": parsed}, value=func.json_typeof(doc[key]), else_=None)

    def number_key(self, data: Any, key: str) -> Any:
        """A JSON number (not true/false, not text) at ``key`` of an event's data, else NULL."""
        if not self.pg:
            kind = func.json_type(data, f'$."{key}"')
            return case((kind.in_(("integer", "real")), cast(func.json_extract(data, f'$."{key}"'), Float)),
                        else_=None)
        doc = cast(data, JSON)
        return case((func.json_typeof(doc[key]) == "number", cast(doc[key].astext, Float)), else_=None)

    def text_key(self, data: Any, key: str) -> Any:
        """The value at ``key`` of an event's data, as SQL reads it."""
        return cast(data, JSON)[key].astext if self.pg else func.json_extract(data, f"$.{key}")

    def days_from(self, day: Any, today: str) -> Any:
        """Days from ``today`` to a date column."""
        if self.pg:
            return cast(day - cast(literal(today), Date), Float)
        return func.julianday(day) - func.julianday(today)

    def clamp(self, share: Any) -> Any:
        """min(max(share, 0), 1)."""
        if self.pg:
            return func.least(func.greatest(share, literal(0.0)), literal(1.0))
        return func.min(func.max(share, literal(0.0)), literal(1.0))

    def whole_days(self, last: Any, now: datetime) -> Any:
        """Whole days from ``last`` to ``now``, on whole seconds (as engine.health.inputs.since)."""
        if self.pg:
            seconds = cast(func.floor(func.extract("epoch", literal(now, UtcDateTime))), BigInteger) - \
                cast(func.floor(func.extract("epoch", last)), BigInteger)
        else:
            seconds = cast(func.strftime("%s", literal(now.strftime("%Y-%m-%d %H:%M:%S"))), Integer) - \
                cast(func.strftime("%s", last), Integer)
        return case((last.is_(None), None), else_=cast(seconds // literal(86400), Float))


def _field_expr(sql: _Sql, acc: Any, name: str, today: str) -> Any:
    if name == "arr":
        return cast(acc.c.arr, Float)
    if name in ("renewal_date", "contract_start"):
        return sql.days_from(acc.c[name], today)
    column = acc.c.fields if name.startswith("fields.") else acc.c.usage
    return sql.json_number(column, name.split(".", 1)[1])


def _field_names(model: HealthModel) -> list[str]:
    """Every account field the model reads (a field source and its ``per``), once each."""
    names = [n for m in model.measures if m.source.kind == "field" for n in (m.source.name, m.source.per) if n]
    return list(dict.fromkeys(names))


def _field(acc: Any, names: list[str], name: str) -> Any:
    """A field's number, read from the ``f<i>`` column of the fields layer."""
    return acc.c[f"f{names.index(name)}"]


def _points(sql: _Sql, measure: Measure, value: Any) -> Any:
    if measure.range is not None:
        start, end = measure.range.start, measure.range.end
        share = (value - literal(start)) / literal(end - start)
        return literal(100.0) * sql.clamp(share)
    whens = []
    for step in measure.thresholds:
        conds = [value >= literal(step.at_least)] if step.at_least is not None else []
        conds += [value <= literal(step.at_most)] if step.at_most is not None else []
        whens.append((and_(*conds) if conds else literal(True), literal(step.points)))
    return case(*whens, else_=literal(0.0)) if whens else literal(0.0)


def _counted(sql: _Sql, measure: Measure, value: Any) -> Any:
    """The measure's points, or what a missing value counts as (NULL: skipped)."""
    missing = measure.missing
    instead = (None if missing.mode == "skip" else literal(missing.number) if missing.mode == "points"
               else literal(points(measure, missing.number)))
    return case((value.is_(None), instead), else_=_points(sql, measure, value))


def _weight(model: HealthModel, kind: str, name: str, base: float, row: Any) -> Any:
    """The weight for the account's segment and stage: the last matching override that sets it wins."""
    whens = []
    for override in reversed(model.overrides):
        given = dict(override.buckets if kind == "bucket" else override.measures)
        if name not in given:
            continue
        conds = []
        if override.segment:
            conds.append(func.lower(row.c.segment) == override.segment)
        if override.lifecycle_stage:
            conds.append(func.lower(row.c.lifecycle_stage) == override.lifecycle_stage)
        whens.append((and_(*conds), literal(given[name])))
    return case(*whens, else_=literal(base)) if whens else literal(base)


def _value(sql: _Sql, src: Source, acc: Any, names: list[str], ev: Any, keys: list[tuple[str, str, int]],
           latest: dict[Source, Any], used: dict[Source, Any], now: datetime) -> Any:
    def col(key: tuple[str, str, int]) -> Any:
        return ev.c[f"c{keys.index(key)}"]

    if src.kind == "field":
        value = _field(acc, names, src.name)
        if not src.per:
            return value
        per = _field(acc, names, src.per)
        return case((per.is_(None) | (per == 0), None), (value.is_(None), None), else_=value / per)
    if src.kind == "count":
        return cast(func.coalesce(col(("count", src.name, src.days)), 0), Float)
    if src.kind == "trend":
        before = func.coalesce(col(("before", src.name, src.days)), 0)
        return case((before == 0, None),
                    else_=cast(func.coalesce(col(("count", src.name, src.days)), 0), Float) / cast(before, Float))
    if src.kind == "days_since":
        return sql.whole_days(col(("last", src.name, 0)), now)
    if src.kind == "latest":
        return sql.number_key(latest[src].c.data, src.value)
    return cast(func.coalesce(used[src].c.n, 0), Float) / literal(float(len(src.features)))


def _statement(model: HealthModel, now: datetime, dialect: str = "sqlite") -> Any:
    from connectors.sqlcrm_models import AccountRow

    sql = _Sql(dialect)
    table = AccountRow.__table__.alias("accounts")
    names = _field_names(model)
    today = now.date().isoformat()
    # The account fields as numbers, each read from its JSON once (materialised: SQLite would inline it).
    acc = select(table.c.id, table.c.segment, table.c.lifecycle_stage,
                 *(_field_expr(sql, table, n, today).label(f"f{i}") for i, n in enumerate(names))
                 ).cte("health_fields").prefix_with("MATERIALIZED")
    cols, keys, types = event_columns(model, now)
    ev = (select(EventRow.account_id, *cols).where(EventRow.type.in_(sorted(types))).group_by(EventRow.account_id)
          .subquery("ev")) if cols else None
    latest: dict[Source, Any] = {}
    used: dict[Source, Any] = {}
    query = select(acc.c.id)
    joined: Any = acc
    if ev is not None:
        joined = joined.outerjoin(ev, ev.c.account_id == acc.c.id)
    for i, src in enumerate(dict.fromkeys(m.source for m in model.measures if m.source.kind == "latest")):
        ranked = select(EventRow.account_id, EventRow.data, func.row_number().over(
            partition_by=EventRow.account_id, order_by=(EventRow.occurred_at.desc(), EventRow.id.desc())).label("rn")
        ).where(EventRow.type == src.name, EventRow.occurred_at <= now).subquery()
        latest[src] = select(ranked.c.account_id, ranked.c.data).where(ranked.c.rn == 1).subquery(f"latest{i}")
        joined = joined.outerjoin(latest[src], latest[src].c.account_id == acc.c.id)
    for i, src in enumerate(dict.fromkeys(m.source for m in model.measures if m.source.kind == "features_used")):
        used[src] = (select(FirstUseRow.account_id, func.count(func.distinct(FirstUseRow.name)).label("n"))
                     .where(FirstUseRow.kind == "feature", FirstUseRow.name.in_(list(src.features)),
                            FirstUseRow.first_at <= now).group_by(FirstUseRow.account_id).subquery(f"used{i}"))
        joined = joined.outerjoin(used[src], used[src].c.account_id == acc.c.id)
    health = select(EventRow.account_id, EventRow.data, func.row_number().over(
        partition_by=EventRow.account_id, order_by=(EventRow.occurred_at.desc(), EventRow.received_at.desc(),
                                                    EventRow.id.desc())).label("rn")
    ).where(EventRow.type == "health.updated").subquery()
    last = select(health.c.account_id, health.c.data).where(health.c.rn == 1).subquery("last")
    joined = joined.outerjoin(last, last.c.account_id == acc.c.id)
    # Three materialised layers, so SQLite computes each value once (it would inline them otherwise):
    # the measures' values; their points and weights; the bucket sums; then the score.
    measures = model.measures
    values = query.add_columns(
        acc.c.segment, acc.c.lifecycle_stage,
        *(_value(sql, m.source, acc, names, ev, keys, latest, used, now).label(f"v{i}")
          for i, m in enumerate(measures)),
        sql.text_key(last.c.data, "score").label("prev"), sql.text_key(last.c.data, "band").label("band")
    ).select_from(joined).cte("health_values").prefix_with("MATERIALIZED")
    base_b, base_m = weights_for(model)
    counted = select(
        values.c.id, values.c.prev, values.c.band,
        *(_counted(sql, m, values.c[f"v{i}"]).label(f"p{i}") for i, m in enumerate(measures)),
        *(_weight(model, "measure", m.name, base_m[m.name], values).label(f"w{i}") for i, m in enumerate(measures)),
        *(_weight(model, "bucket", b.name, base_b[b.name], values).label(f"b{j}") for j, b in enumerate(model.buckets))
    ).cte("health_points").prefix_with("MATERIALIZED")
    index = {m.name: i for i, m in enumerate(measures)}
    sums = []
    for j, bucket in enumerate(model.buckets):
        acc_sum: Any = literal(0.0)
        w_sum: Any = literal(0.0)
        for m in bucket.measures:  # in model order, as engine.health.score adds them
            got, w = counted.c[f"p{index[m.name]}"], counted.c[f"w{index[m.name]}"]
            live = and_(got.is_not(None), w > 0)
            acc_sum = acc_sum + case((live, got * w), else_=literal(0.0))
            w_sum = w_sum + case((live, w), else_=literal(0.0))
        sums += [acc_sum.label(f"a{j}"), w_sum.label(f"s{j}"), counted.c[f"b{j}"]]
    buckets = select(counted.c.id, counted.c.prev, counted.c.band, *sums).cte("health_buckets").prefix_with(
        "MATERIALIZED")
    total_w: Any = literal(0.0)
    for j in range(len(model.buckets)):
        live = and_(buckets.c[f"s{j}"] > 0, buckets.c[f"b{j}"] > 0)
        total_w = total_w + case((live, buckets.c[f"b{j}"]), else_=literal(0.0))
    total: Any = literal(0.0)
    for j in range(len(model.buckets)):
        live = and_(buckets.c[f"s{j}"] > 0, buckets.c[f"b{j}"] > 0)
        part = buckets.c[f"b{j}"] / total_w * buckets.c[f"a{j}"] / buckets.c[f"s{j}"]
        total = total + case((live, part), else_=literal(0.0))
    return select(buckets.c.id, case((total_w > 0, total), else_=None).label("score"), buckets.c.prev,
                  buckets.c.band)


def scores(store: Store, model: HealthModel, now: datetime) -> Any:
    """A coroutine answering (account id, unrounded score or None, last score or None, last band) for every account."""
    at = utc(now, "now")
    dialect = store.db.engine.dialect.name
    statement = _statement(model, at, dialect)

    def work(s: Session) -> Sequence[tuple[str, float | None, float | None, str]]:
        if dialect == "sqlite":
            raw = s.connection().connection.driver_connection
            assert raw is not None, "a live SQLite connection"
            raw.create_function("csops_number", 1, _text_number, deterministic=True)
        return [(r[0], r[1], None if r[2] is None else float(r[2]), str(r[3] or "")) for r in s.execute(statement)]
    return store.db.read(work)


