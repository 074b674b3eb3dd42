"""The store's bookkeeping tables: where each named scan got to and each round-robin pool's counter.

Apart from engine/store/store_models.py (the events, decisions and runs) to keep that module short;
the tables are on the same metadata, so ``Store`` creates them with the others.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.store_models import Base

__all__ = ["PoolCursorRow", "ScanStateRow"]


class ScanStateRow(Base):
    """``scan_state``: the last day a named scan covered."""

    __tablename__ = "scan_state"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date)


class PoolCursorRow(Base):
    """``pool_cursors``: how many assignments a team's round-robin pool has handed out."""

    __tablename__ = "pool_cursors"
    team: Mapped[str] = mapped_column(String(255), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger)
