"""How ``Store.unprocessed`` claims queued events: by a scan of the queue in order (the processor's claims), or by
one statement over given ids (``ingest(process=True)``), built once per store and bound per call.

The rule is the same for both: an event is claimed when it is free (not processed, not failed, not
claimed by another within the lease, not waiting out a back-off) and no earlier queued event of its
account is busy. The scan reads the queue oldest first (only the columns that decide, a page at a
time) and stops as soon as it has its events: an account is held back from the first busy event
of it the scan meets, which sees every earlier event of an account before a later one. The single
statement checked each candidate with a correlated NOT EXISTS over all the earlier queued events
of its account, one table read each: with a backlog of a few thousand events that was most of the
processor's CPU per event (bench/ingest.py).

``release_claims`` gives back the claims of a round a processor cut short (stopped mid-round): its
events are claimed again at once, by it or another processor, instead of after the lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import NullType

from connectors.sqlcrm_models import array_text
from engine.store.eventinsert import sqlite_moment
from engine.store.store_models import Base, EventRecord, EventRow, UtcDateTime, event_record, utc

if TYPE_CHECKING:
    from engine.store.store import Store

__all__ = ["QueueScan", "bound_ids", "claim_statement", "one_of", "release_claims"]


def one_of(column: Any, postgres: bool) -> ColumnElement[bool]:
    """``column`` is one of the ids bound as ``ids`` (``bound_ids``): one parameter, not one per id.

    A statement built per call with ``in_(ids)`` coerced each of a round's 200 ids and rendered a
    placeholder for it, which cost more Python than the statement took to run. SQLite reads the
    list as JSON text (json_each) and still looks each id up by its key; PostgreSQL reads it as the
    array literal ``Database.among`` binds too (``array_text``), cast to ``text[]`` by SQL.
    """
    if postgres:
        found: ColumnElement[bool] = column == any_(cast(bindparam("ids", type_=Text()), ARRAY(Text())))
        return found
    listed: Any = select(literal_column("value")).select_from(func.json_each(bindparam("ids", type_=String())))
    inside: ColumnElement[bool] = column.in_(listed.scalar_subquery())
    return inside


def bound_ids(ids: Sequence[str], postgres: bool) -> Any:
    """The value of the ``ids`` parameter of ``one_of``."""
    return array_text(ids) if postgres else json.dumps(list(ids))


def _free(t: Any, at: Any, stale: Any) -> ColumnElement[bool]:
    """Whether an event row (of ``EventRow`` or an alias) can be claimed at ``at`` (claims before ``stale`` lapsed)."""
    # coalesce(...) IS NULL, not two IS NULLs: SQLite would otherwise walk the index of queued events for a
    # claim of given ids (every queued row checked against the list) instead of looking up each id.
    return and_(func.coalesce(t.processed_at, t.failed_at).is_(None),
                or_(t.claimed_at.is_(None), t.claimed_at < stale), or_(t.retry_at.is_(None), t.retry_at <= at))


def claim_statement(*, with_ids: bool) -> Any:
    """``Store.unprocessed``'s claim; parameters: at, stale (at - lease), limit, and ids when ``with_ids``."""
    at, stale = bindparam("at", type_=UtcDateTime()), bindparam("stale", type_=UtcDateTime())
    free = _free(EventRow, at, stale)
    earlier = aliased(EventRow)
    busy = not_(_free(earlier, at, stale))
    ids: BindParameter[list[str]] = bindparam("ids", expanding=True)
    if with_ids:
        busy = or_(busy, earlier.id.not_in(ids))
    behind = exists().where(
        earlier.account_id == EventRow.account_id, earlier.processed_at.is_(None), earlier.failed_at.is_(None),
        or_(earlier.received_at < EventRow.received_at,
            and_(earlier.received_at == EventRow.received_at, earlier.id < EventRow.id)), busy)
    pick = select(EventRow.id).where(free, ~behind)
    if with_ids:
        pick = pick.where(EventRow.id.in_(ids))
    pick = pick.order_by(EventRow.received_at, EventRow.id).limit(bindparam("limit", type_=Integer()))
    # The condition is checked again by the UPDATE itself, so of two claimers only one gets a row.
    # Core rows, not ORM objects: a claim of 200 events costs a third less (bench/ingest.py).
    table = Base.metadata.tables[EventRow.__tablename__]
    return (update(table).where(table.c.id.in_(pick.scalar_subquery()), free).values(claimed_at=at)
            .returning(*table.c))


class QueueScan:
    """The statements of a claim by scan, built once; ``claim`` runs it in the caller's write transaction."""

    PAGE = 1000
    """Rows of the queue read at a time after the first page (which is twice the claim's ``limit``)."""

    def __init__(self, *, postgres: bool) -> None:
        self.postgres = postgres
        table = Base.metadata.tables[EventRow.__tablename__]
        c = table.c
        at, stale = bindparam("at", type_=UtcDateTime()), bindparam("stale", type_=UtcDateTime())
        # Whether each row is busy is worked out by the database, and the order's time column comes back as
        # the database keeps it (it is only bound again for the next page): no time converted per row read.
        raw = NullType()
        after_at, after_id = bindparam("after_at", type_=raw), bindparam("after_id", type_=String())
        received = type_coerce(c.received_at, raw)
        queued = (select(c.id, c.account_id, not_(_free(c, at, stale)).label("busy"), received.label("received_raw"))
                  .where(c.processed_at.is_(None), c.failed_at.is_(None)).order_by(c.received_at, c.id)
                  .limit(bindparam("page", type_=Integer())))
        self.first = queued
        self.next = queued.where(or_(received > after_at, and_(received == after_at, c.id > after_id)))
        columns = record_columns(c)
        if not postgres:  # the times as SQLite keeps them (text), parsed in C: its type's processors cost more per row
            columns = [type_coerce(col, String()).label(col.name) if col.name in _TIMES else col for col in columns]
        self.time: Callable[[Any], datetime] = (lambda value: value) if postgres else sqlite_moment
        """What makes a time of ``take``'s rows."""
        # The free check again, in the write: on PostgreSQL a processor may mark an event between the read and it.
        self.take = (update(table).where(one_of(c.id, postgres), _free(c, at, stale))
                     .values(claimed_at=at).returning(*columns))

    def claim(self, s: Session, *, at: datetime, stale: datetime, limit: int) -> list[EventRecord]:
        """Claim up to ``limit`` events; ``s`` holds the write lock."""
        chosen: list[str] = []
        held: set[str] = set()
        params: dict[str, Any] = {"at": at, "stale": stale, "page": 2 * limit}
        rows = s.execute(self.first, params).all()
        while rows:
            for r in rows:
                if r.account_id in held:
                    continue
                if r.busy:  # the account's later events wait their turn behind it
                    held.add(r.account_id)
                    continue
                chosen.append(r.id)
                if len(chosen) >= limit:
                    break
            if len(chosen) >= limit or len(rows) < params["page"]:
                break
            params.update(page=self.PAGE, after_at=rows[-1].received_raw, after_id=rows[-1].id)
            rows = s.execute(self.next, params).all()
        if not chosen:
            return []
        rows = s.execute(self.take, {"ids": bound_ids(chosen, self.postgres), "at": at, "stale": stale}).all()
        time = self.time
        return [event_record(r, time) for r in rows]


_TIMES = frozenset({"occurred_at", "received_at", "failed_at"})


def record_columns(c: Any) -> list[Any]:
    """The columns ``event_record`` reads."""
    return [c.id, c.type, c.account_id, c.occurred_at, c.received_at, c.data, c.attempts, c.last_error, c.failed_at]


async def release_claims(store: Store, ids: Sequence[str], *, at: datetime) -> int:
    """Give back the claims taken at ``at`` on these events, of those not processed yet; how many were given back.

    Only a claim still ours is released: an event another processor claimed since (after our lease
    lapsed) has a later ``claimed_at``, and one processed, failed or waiting out a back-off was
    already let go (``Store.mark_processed``, ``Store.record_failures``).
    """
    if not ids:
        return 0
    when = utc(at, "at")
    stmt = (update(EventRow).where(EventRow.id.in_(list(ids)), EventRow.processed_at.is_(None),
                                   EventRow.claimed_at == when)
            .values(claimed_at=None).returning(EventRow.id).execution_options(synchronize_session=False))

    def work(s: Session) -> int:
        given = len(s.scalars(stmt).all())
        s.commit()
        return given
    return await store.db.run(work)
