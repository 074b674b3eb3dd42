"""Claims of queued events: the statement that takes them (``Store.unprocessed``), and giving them back.

The claim statement is built once per store and bound per call: building it costs more Python than
running it (an aliased table, a correlated NOT EXISTS, a dozen comparisons), so the processor
claiming a few events per round would pay that each time.

``release_claims`` gives back the claims of a round a processor cut short (stopped mid-round): its
events are claimed again at once, by it or another processor, instead of after the lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, ColumnElement, Integer, and_, bindparam, exists, not_, or_, select, update
from sqlalchemy.orm import Session, aliased

from engine.store.runstore import commit_then
from engine.store.store_models import Base, EventRow, UtcDateTime, utc

if TYPE_CHECKING:
    from engine.store.store import Store

__all__ = ["claim_statement", "release_claims"]


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
        return commit_then(s, len(s.scalars(stmt).all()))
    return await store.db.run(work)
