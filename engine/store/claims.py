"""The statement that claims queued events (``Store.unprocessed``), built once per store and bound per call.

Building it costs more Python than running it (an aliased table, a correlated NOT EXISTS, a dozen
comparisons), so the processor claiming a few events per round would pay that each time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Integer, and_, bindparam, exists, not_, or_, select, update
from sqlalchemy.orm import aliased

from engine.store.store_models import Base, EventRow, UtcDateTime

__all__ = ["claim_statement"]


def _free(t: Any, at: Any, stale: Any) -> ColumnElement[bool]:
    """Whether an event row (of ``EventRow`` or an alias) can be claimed at ``at`` (claims before ``stale`` lapsed)."""
    return and_(t.processed_at.is_(None), t.failed_at.is_(None),
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
