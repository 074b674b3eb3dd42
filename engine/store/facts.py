"""The store's account facts: health scores and first uses of a feature or product.

Part of ``Store`` (engine/store/store.py), apart only to keep each module small; ``FactTables``
uses the Store's ``db`` and ``_insert``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.sqlcrm_models import Database
from engine.store.runstore import commit_then
from engine.store.store_models import FirstUseRow, HealthRow, utc

USE_KINDS = frozenset({"feature", "product"})


class FactTables:
    """The account-fact side of ``Store``."""

    db: Database
    _insert: Any

    # --- health ----------------------------------------------------------------------------------

    async def add_health(self, account_id: str, at: datetime, score: float, band: str = "") -> None:
        """Record the account's health score at ``at``."""
        row = HealthRow(account_id=account_id, at=utc(at), score=float(score), band=band)

        def work(s: Session) -> None:
            s.add(row)
            s.commit()
        await self.db.run(work)

    async def health_since(self, account_id: str, since: datetime, *,
                           prior: bool = False) -> list[tuple[datetime, float, str]]:
        """Scores recorded at or after ``since`` as (at, score, band), in time order.

        With ``prior`` the last score before ``since`` (the one in force when the window opens)
        comes first, when there is one.
        """
        start = utc(since, "since")
        cols = (HealthRow.at, HealthRow.score, HealthRow.band)
        mine = HealthRow.account_id == account_id
        window = select(*cols).where(mine, HealthRow.at >= start).order_by(HealthRow.at, HealthRow.id)
        before = select(*cols).where(mine, HealthRow.at < start).order_by(HealthRow.at.desc(), HealthRow.id.desc())

        def work(s: Session) -> list[tuple[datetime, float, str]]:
            rows = [*s.execute(before.limit(1)).all(), *s.execute(window).all()] if prior else s.execute(window).all()
            return [(r.at, r.score, r.band) for r in rows]
        return await self.db.read(work)

    async def last_health(self, account_id: str, *, before: datetime | None = None) -> tuple[float, str] | None:
        """The latest (score, band) of the account (before ``before`` when given), or None."""
        query = select(HealthRow.score, HealthRow.band).where(HealthRow.account_id == account_id)
        if before is not None:
            query = query.where(HealthRow.at < utc(before, "before"))
        query = query.order_by(HealthRow.at.desc(), HealthRow.id.desc()).limit(1)
        row = await self.db.read(lambda s: s.execute(query).first())
        return None if row is None else (row.score, row.band)

    # --- first uses ------------------------------------------------------------------------------

    async def record_use(self, account_id: str, kind: str, name: str, at: datetime, event_id: str = "") -> bool:
        """Note that the account used a feature or product; True only the first time ever.

        Raises:
            ValueError: ``kind`` is neither ``feature`` nor ``product``.
        """
        if kind not in USE_KINDS:
            raise ValueError(f"a use is of a feature or a product, not {kind!r}")
        row = {"account_id": account_id, "kind": kind, "name": name, "first_at": utc(at), "event_id": event_id}
        stmt = self._insert(FirstUseRow).on_conflict_do_nothing().returning(FirstUseRow.name)
        return await self.db.run(lambda s: commit_then(s, s.scalars(stmt, [row]).first() is not None))

    async def first_use(self, account_id: str, kind: str, name: str) -> tuple[datetime, str] | None:
        """When the account first used the feature or product, and the event that said so; None if never."""
        query = select(FirstUseRow.first_at, FirstUseRow.event_id).where(
            FirstUseRow.account_id == account_id, FirstUseRow.kind == kind, FirstUseRow.name == name)
        row = await self.db.read(lambda s: s.execute(query).first())
        return None if row is None else (row.first_at, row.event_id)
