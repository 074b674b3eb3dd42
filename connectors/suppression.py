"""The suppression list (addresses that must never be mailed) and the log of marketing sends.

Both live in SQLite or PostgreSQL beside the ledger. Every addition and removal is also written to
``suppression_log`` (who, when, why, and the event that caused it), kept when an address is removed,
so the list can be audited. Addresses are kept normalised (stripped,
lower-case), so ``Bob@X.com`` and ``bob@x.com`` are one entry. The marketing log is what the
marketing cap counts: one row per send, keyed by the idempotency key, so a retried send is
counted once; a per-recipient lock makes "count, then record" atomic across workers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Index, Integer, String, delete, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from connectors.sqlcrm_models import Database

__all__ = ["LogEntry", "Suppression", "SuppressionList", "normalise"]


class _Base(DeclarativeBase):
    """The tables of this module only, so they can live in any database."""


class SuppressionRow(_Base):
    """``suppressions``: one address that gets no mail."""

    __tablename__ = "suppressions"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SuppressionLogRow(_Base):
    """``suppression_log``: one addition or removal, never deleted."""

    __tablename__ = "suppression_log"
    __table_args__ = (Index("ix_suppression_log_email", "email"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(200), default="")
    by: Mapped[str] = mapped_column(String(200), default="")


class MarketingSendRow(_Base):
    """``marketing_sends``: one marketing email counted against its recipient's cap."""

    __tablename__ = "marketing_sends"
    __table_args__ = (Index("ix_marketing_sends_recipient_sent_at", "recipient", "sent_at"),)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, kw_only=True)
class Suppression:
    """An entry of the suppression list."""

    email: str
    """The address, normalised (lower-case)."""
    reason: str
    """Why (unsubscribed, bounced, complaint, manual...)."""
    created_at: datetime
    """When it was added (UTC)."""
    by: str = ""
    """Who or what added it (a person, ``event:ID``, ``unsubscribe-link``); "" for entries made before it was kept."""


@dataclass(frozen=True, kw_only=True)
class LogEntry:
    """One addition to or removal from the list."""

    at: datetime
    """When (UTC)."""
    action: str
    """added, removed, or already (added again: the first entry stands)."""
    email: str
    """The address."""
    reason: str
    """Why."""
    by: str
    """Who or what."""


def normalise(email: str) -> str:
    """The form addresses are stored and compared in: stripped and lower-case."""
    return email.strip().lower()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SuppressionList:
    """Addresses that must never be mailed, and the marketing sends the cap counts.

    Args:
        database_url: A SQLAlchemy URL (``sqlite:///.csops/store.db``, ``postgresql+psycopg://...``);
            the tables ``suppressions`` and ``marketing_sends`` are created if missing.
    """

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url, _Base.metadata)
        self._postgres = self.db.engine.dialect.name == "postgresql"

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()

    async def add(self, email: str, reason: str = "", *, by: str = "") -> bool:
        """Suppress ``email``; False when it already was (adding it again keeps the first reason and time).

        Raises:
            ValueError: ``email`` is not an address.
        """
        address = normalise(email)
        if "@" not in address or len(address) > 320:
            raise ValueError(f"{email!r:.80} is not an email address")
        now = datetime.now(UTC)

        def work(s: Session) -> bool:
            new = s.get(SuppressionRow, address) is None
            if new:
                s.add(SuppressionRow(email=address, reason=reason[:200], created_at=now, added_by=by[:200]))
            s.add(SuppressionLogRow(at=now, action="added" if new else "already", email=address, reason=reason[:200],
                                    by=by[:200]))
            s.commit()
            return new
        return await self.db.run(work)

    async def remove(self, email: str, *, by: str = "", reason: str = "") -> bool:
        """Take ``email`` off the list (logged with who and why); False when it was not on it."""
        address = normalise(email)

        def work(s: Session) -> bool:
            row = s.get(SuppressionRow, address)
            if row is None:
                return False
            s.delete(row)
            s.add(SuppressionLogRow(at=datetime.now(UTC), action="removed", email=address, reason=reason[:200],
                                    by=by[:200]))
            s.commit()
            return True
        return await self.db.run(work)

    async def log(self, email: str | None = None, limit: int = 100) -> list[LogEntry]:
        """The latest additions and removals, newest first (of one address, or all)."""
        query = select(SuppressionLogRow).order_by(SuppressionLogRow.id.desc()).limit(limit)
        if email is not None:
            query = query.where(SuppressionLogRow.email == normalise(email))
        rows = await self.db.run(lambda s: s.scalars(query).all())
        return [LogEntry(at=_aware(r.at), action=r.action, email=r.email, reason=r.reason, by=r.by) for r in rows]

    async def contains(self, email: str) -> bool:
        """Whether ``email`` (in any letter case) is suppressed."""
        address = normalise(email)
        found = await self.db.run(lambda s: s.get(SuppressionRow, address))
        return found is not None

    async def suppressed(self, emails: list[str]) -> set[str]:
        """Which of ``emails`` are suppressed, in their normalised form (one query)."""
        addresses = sorted({normalise(e) for e in emails})
        rows = await self.db.run(
            lambda s: s.scalars(select(SuppressionRow.email).where(SuppressionRow.email.in_(addresses))).all())
        return set(rows)

    async def list(self) -> list[Suppression]:
        """Every entry, by address."""
        rows = await self.db.run(lambda s: s.scalars(select(SuppressionRow).order_by(SuppressionRow.email)).all())
        return [Suppression(email=r.email, reason=r.reason, created_at=_aware(r.created_at), by=r.added_by or "")
                for r in rows]

    async def reserve_marketing(self, recipient: str, key: str, *, cap: int, window: timedelta,
                                now: datetime | None = None) -> bool:
        """Count one marketing send to ``recipient`` unless that goes over ``cap`` within ``window``.

        Returns True when the send may go (also when ``key`` was counted before: a retry is not a
        new send), False when the recipient already had ``cap`` marketing sends in the window.
        Concurrent reservations for one recipient are serialised, so the cap holds across workers.
        """
        address, moment = normalise(recipient), now or datetime.now(UTC)

        def work(s: Session) -> bool:
            if self._postgres:
                # Held to the end of the transaction: two workers cannot both count, then both insert.
                # SQLite needs nothing: every unit of work there starts with BEGIN IMMEDIATE.
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(address)})
            if s.get(MarketingSendRow, key) is not None:
                s.commit()
                return True
            count = s.scalar(select(func.count()).select_from(MarketingSendRow).where(
                MarketingSendRow.recipient == address, MarketingSendRow.sent_at > moment - window)) or 0
            if count >= cap:
                s.commit()
                return False
            s.add(MarketingSendRow(key=key, recipient=address, sent_at=moment))
            s.commit()
            return True
        return await self.db.run(work)

    async def release_marketing(self, key: str) -> None:
        """Uncount the send with ``key`` (it failed for good, so it reached nobody)."""
        def work(s: Session) -> None:
            s.execute(delete(MarketingSendRow).where(MarketingSendRow.key == key))
            s.commit()
        await self.db.run(work)

    async def marketing_count(self, recipient: str, *, since: datetime) -> int:
        """How many marketing sends to ``recipient`` are counted after ``since``."""
        address = normalise(recipient)
        count = await self.db.run(lambda s: s.scalar(select(func.count()).select_from(MarketingSendRow).where(
            MarketingSendRow.recipient == address, MarketingSendRow.sent_at > since)))
        return int(count or 0)


def _lock_key(address: str) -> int:
    # A signed 64-bit number, as pg_advisory_xact_lock takes; namespaced so other locks don't collide.
    digest = hashlib.sha256(b"csops.marketing_sends\0" + address.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
