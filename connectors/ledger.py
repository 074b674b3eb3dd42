"""The exactly-once ledger: the result of every side effect, stored under its idempotency key.

Activities ask the ledger before calling out and record the result after; a retried activity
(or a replayed one after a worker crash) finds its key done and returns the recorded result
without calling out again. The key is the primary key, so when two attempts race the first
writer wins and both get its result. Connectors also dedupe on the key, which covers a crash
between the call and the ``record``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.sqlcrm_models import Database

__all__ = ["Ledger"]


class _Base(DeclarativeBase):
    """The ledger's own metadata, so it can live in a database without the CRM tables."""


class Effect(_Base):
    """``effects``: one done side effect."""

    __tablename__ = "effects"
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    result: Mapped[str] = mapped_column(Text)
    """The result as JSON text."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Ledger:
    """Results of done side effects by idempotency key, in SQLite or PostgreSQL.

    Results must be JSON values (None, bool, numbers, text, lists, dicts with text keys); they
    come back as JSON gives them (a tuple as a list). ``get`` cannot tell a recorded None from a
    missing key, so record something else (``True``) for effects without a result.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///.csops/store.db``; the table is created if missing.
    """

    def __init__(self, url: str) -> None:
        self.db = Database(url, _Base.metadata)

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()

    async def get(self, key: str) -> Any | None:
        """The recorded result for ``key``, or None when the effect is not done."""
        text = await self.db.read(lambda s: s.scalar(select(Effect.result).where(Effect.key == key)))
        return None if text is None else json.loads(text)

    async def record(self, key: str, result: Any) -> Any:
        """Store ``result`` under ``key`` unless the key is already done; return the stored result.

        Raises:
            TypeError: ``result`` is not a JSON value.
        """
        try:
            text = json.dumps(result, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ledger results must be JSON values: {exc}") from exc

        def work(s: Session) -> str:
            s.add(Effect(key=key, result=text, created_at=datetime.now(UTC)))
            try:
                s.commit()
            except IntegrityError:
                # Another attempt recorded this key first: its result is the one that happened.
                s.rollback()
                stored = s.scalar(select(Effect.result).where(Effect.key == key))
                if stored is None:
                    raise
                return stored
            return text

        return json.loads(await self.db.run(work))

    def count(self) -> int:
        """How many effects are recorded."""
        return self.db.call(lambda s: s.scalar(select(func.count()).select_from(Effect)) or 0)
