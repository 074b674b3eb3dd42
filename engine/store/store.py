"""The engine's store: events, health history, first uses, trigger decisions, runs and their step audit.

It lives in SQLite (the default, one file) or PostgreSQL, in its own tables beside the CRM and the
ledger (engine/store/store_models.py), through ``connectors.sqlcrm_models.Database``: one engine per URL,
units of work on worker threads, SQLite writers serialised by ``BEGIN IMMEDIATE``.

Everything that must happen once is decided by the database, not by a read before a write:
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells the one caller whose row went in (an event
id, a first use, a run, an audit row), and the round-robin counter is one atomic upsert. So
concurrent API servers and workers agree without locks of their own. Times are aware and stored
in UTC; a naive time is refused with a ValueError.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateColumn

from connectors.sqlcrm_models import Database
from connectors.sqlite_engine import sqlite_engine
from engine.store.claims import QueueScan, bound_ids, claim_statement, one_of
from engine.store.eventinsert import EventLike, event_row, insert_events
from engine.store.facts import FactTables
from engine.store.runstore import RunTables, commit_then
from engine.store.store_models import (
    AuditRow,
    Base,
    DecisionRecord,
    EventRecord,
    EventRow,
    RunPage,
    RunRecord,
    UtcDateTime,
    event_record,
    utc,
)
from engine.store.store_views import create_views

T = TypeVar("T")

__all__ = ["API_WRITE_WAIT", "LEASE", "MAX_ATTEMPTS", "AuditRow", "DecisionRecord", "EventLike", "EventRecord",
           "RequeueOutcome", "RunPage", "RunRecord", "Store", "retry_delay"]

LEASE = timedelta(minutes=5)
"""How long a claimed event stays with its processor before another may take it."""
CLAIM_LOCK = 0x63736F7073636C6D  # "csopsclm": the PostgreSQL advisory lock claims of events take in turn
MAX_ATTEMPTS = 8
"""Failed attempts after which an event is set aside as failed (``record_failures``)."""
FIRST_RETRY = timedelta(seconds=30)
"""The back-off after an event's first failed attempt; it doubles with each further one, up to the lease."""
MAX_ERROR = 2000
"""A failed attempt's error text longer than this many characters is cut."""

API_WRITE_WAIT = 5.0
"""Seconds an API write (storing events) waits for a lock another writer holds before giving up with
RetryableError, which the API answers 503 with Retry-After; other writes wait 30 s."""

_QUICK_WRITES = ThreadPoolExecutor(max_workers=2, thread_name_prefix="csops-quick-write")
"""Threads of the writes with a ``wait`` (the API's): never queued behind the shared pool's threads,
which the event processor may all have waiting 30 s on the same lock."""

RequeueOutcome = Literal["requeued", "unknown", "queued", "processed"]
"""What ``Store.requeue`` did with an id."""


def retry_delay(attempts: int, lease: timedelta = LEASE) -> timedelta:
    """How long an event waits after its ``attempts``-th failed attempt: 30 s, 1 min, 2 min... at most ``lease``.

    Never more than the lease: a failure is often brief (Temporal restarting), and a processor
    that died is retried after the lease anyway.
    """
    return min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 30)), lease)


class Store(RunTables, FactTables):
    """The engine's records in SQLite or PostgreSQL; its tables are created if missing.

    Args:
        database_url: A SQLAlchemy URL: ``sqlite:///.csops/store.db`` or ``postgresql+psycopg://...``.

    Raises:
        ValueError: the URL is for another database.
    """

    def __init__(self, database_url: str) -> None:
        backend = make_url(database_url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"the store runs on SQLite or PostgreSQL, not {backend}; use a sqlite:/// "
                             "or postgresql+psycopg:// URL")
        import engine.store.console_models  # noqa: F401 - the console's tables (sign-in, sessions) live in the store too

        self.db = Database(database_url, Base.metadata)
        _add_missing(self.db.engine)
        create_views(self.db.engine)
        postgres = backend == "postgresql"
        self._insert = pg_insert if postgres else sqlite_insert
        events = Base.metadata.tables[EventRow.__tablename__]
        self._mark = (update(events).where(one_of(events.c.id, postgres))
                      .values(processed_at=bindparam("at", type_=UtcDateTime())))
        self._quick: dict[int, Engine] = {}
        """SQLite engines by lock wait in ms, for writes with a ``wait`` (``_write``)."""
        self._by_ids: Any = None
        """The claim statement of ``unprocessed`` with ``ids`` (engine/store/claims.py)."""
        self._scan = QueueScan(postgres=postgres)
        """The claim of ``unprocessed`` without ``ids``."""

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()
        for quick in self._quick.values():
            quick.dispose()

    def __repr__(self) -> str:
        # The URL may carry a password.
        return f"Store({self.db.engine.dialect.name})"

    # --- events ----------------------------------------------------------------------------------

    async def add_event(self, event: EventLike, *, received_at: datetime | None = None) -> bool:
        """Store ``event`` unless its id is stored already; True only for the call that stored it."""
        return (await self.add_events([event], received_at=received_at))[0]

    async def add_events(self, events: Sequence[EventLike], *, received_at: datetime | None = None,
                         wait: float | None = None) -> list[bool]:
        """Store a batch in one transaction; for each event (in order), whether this call stored it.

        An id repeated within the batch counts once, for its first event. ``received_at`` is the
        time noted for all of them (now when None; an ``EventRecord``'s own is not used).
        ``wait``: seconds to wait at most for a lock another writer holds (None: the usual 30 s).

        Raises:
            ValueError: an event has an empty or over-long id, type or account id, or a naive time.
            TypeError: an event's data is not JSON.
            RetryableError: the store is locked (past ``wait``) or unreachable.
        """
        now = utc(received_at or datetime.now(UTC), "received_at")
        text_times = self._insert is sqlite_insert
        rows: dict[str, tuple[str, str, str, Any, str]] = {}
        for event in events:
            if event.id not in rows:
                rows[event.id] = event_row(event, text_times=text_times)
        if not rows:
            return []
        # Sorted, so two batches sharing ids take PostgreSQL's row locks in the same order.
        batch = [rows[key] for key in sorted(rows)]
        inserted = set(await self._write(lambda conn: insert_events(conn, batch, now), wait))
        firsts: set[str] = set()
        answer = []
        for event in events:
            answer.append(event.id in inserted and event.id not in firsts)
            firsts.add(event.id)
        return answer

    async def _write(self, work: Callable[[Connection], T], wait: float | None) -> T:
        """``work`` in one transaction on a plain connection (``Database.call_plain``) on a worker thread, waiting at
        most ``wait`` seconds for another writer's lock.

        SQLite: the connection's busy timeout, set before ``BEGIN IMMEDIATE`` takes the lock and
        restored after. PostgreSQL: ``SET LOCAL lock_timeout`` for the transaction.
        """
        engine = self.db.engine
        if wait is None or (engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")):
            return await asyncio.to_thread(self.db.call_plain, work)
        ms = max(1, int(wait * 1000))
        loop = asyncio.get_running_loop()
        if engine.dialect.name != "sqlite":
            def limited(conn: Connection) -> T:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{ms}ms'")
                return work(conn)

            return await loop.run_in_executor(_QUICK_WRITES, functools.partial(self.db.call_plain, limited))
        quick = self._quick.get(ms)
        if quick is None:
            # Engines of their own whose connections wait ``wait`` s for the lock: no PRAGMA busy_timeout
            # set and restored around each write (three statements more per API post).
            quick = self._quick[ms] = sqlite_engine(engine.url.render_as_string(hide_password=False), ms / 1000)
        return await loop.run_in_executor(_QUICK_WRITES, functools.partial(self.db.call_plain, work, engine=quick))

    async def get_event(self, event_id: str) -> EventRecord | None:
        """The stored event with this id, or None."""
        row = await self.db.read(lambda s: s.get(EventRow, event_id))
        return None if row is None else row.record()

    async def unprocessed(self, limit: int = 100, *, ids: Sequence[str] | None = None, now: datetime | None = None,
                          lease: timedelta = LEASE) -> list[EventRecord]:
        """Claim up to ``limit`` stored events not processed yet (only ``ids`` when given), oldest received first.

        A claimed event is not handed to another caller until ``lease`` has passed without
        ``mark_processed``: so concurrent processors share the queue, and the events of a
        processor that died are taken up again once its lease lapses. An event waiting out its
        back-off after a failed attempt (``record_failures``) is not claimed before its retry time,
        a failed one never; and an event is not claimed while an earlier queued event of its
        account is taken or waiting (or, with ``ids``, is not among them), so each account's
        events are processed in the order received.
        """
        at = utc(now or datetime.now(UTC), "now")
        params: dict[str, Any] = {"at": at, "stale": at - lease, "limit": limit}
        if ids is not None:
            params["ids"] = list(ids)
        if ids is not None and self._by_ids is None:  # built once: its parameters are bound per call
            self._by_ids = claim_statement(with_ids=True)
        postgres = self.db.engine.dialect.name == "postgresql"
        scan, by_ids = self._scan, self._by_ids

        def claim(s: Session) -> list[EventRecord]:
            if postgres:  # one claim at a time: else a claim that raced another could take an account's next event
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            rows = ([event_record(r) for r in s.execute(by_ids, params).all()] if by_ids is not None and ids is not None
                    else scan.claim(s, at=at, stale=at - lease, limit=limit))
            return commit_then(s, rows)
        rows = await self.db.run(claim)
        return sorted(rows, key=lambda r: (r.received_at, r.id))

    async def mark_processed(self, ids: Sequence[str], *, at: datetime | None = None) -> None:
        """Note that these events were processed, so no one claims them again."""
        if not ids:
            return
        params = {"ids": bound_ids(ids, self._scan.postgres), "at": utc(at or datetime.now(UTC), "at")}
        stmt = self._mark
        await self.db.run(lambda s: commit_then(s, s.execute(stmt, params)))

    async def record_failures(self, failures: Sequence[tuple[str, str]], *, at: datetime | None = None,
                              max_attempts: int = MAX_ATTEMPTS, lease: timedelta = LEASE,
                              held: Sequence[str] = (), transient: Sequence[str] = ()) -> list[EventRecord]:
        """Note failed processing attempts, (event id, error) each, in one transaction; the events that failed for good.

        Each attempt counts (``attempts`` + 1, ``last_error``) and releases the event's claim. Below
        ``max_attempts`` the event is claimed again after ``retry_delay`` (30 s, doubling, at most
        ``lease``); at ``max_attempts`` it gets ``failed_at`` and is set aside: never claimed again
        until ``requeue``. ``held`` are claimed events that were not tried because an earlier
        one of their account failed: their claims are released (they keep their turn behind it).
        ``transient`` are events whose failure was an outage (a system unreachable, rate limits):
        they count their attempts but are never set aside, so an outage loses no event's turn.
        An event processed or set aside meanwhile is left alone.
        """
        outage = set(transient)
        when = utc(at or datetime.now(UTC), "at")
        queued = (EventRow.processed_at.is_(None), EventRow.failed_at.is_(None))

        def work(s: Session) -> list[EventRecord]:
            gave_up = []
            for event_id, error in failures:
                text = error if len(error) <= MAX_ERROR else error[:MAX_ERROR - 1] + "…"
                count = s.scalar(update(EventRow).where(EventRow.id == event_id, *queued)
                                 .values(attempts=EventRow.attempts + 1, last_error=text, claimed_at=None)
                                 .returning(EventRow.attempts).execution_options(synchronize_session=False))
                if count is None:
                    continue
                mine = update(EventRow).where(EventRow.id == event_id).execution_options(synchronize_session=False)
                if count >= max_attempts and event_id not in outage:
                    row = s.scalars(mine.values(failed_at=when, retry_at=None).returning(EventRow)).one()
                    gave_up.append(row.record())
                else:
                    s.execute(mine.values(retry_at=when + retry_delay(count, lease)))
            if held:
                s.execute(update(EventRow).where(EventRow.id.in_(list(held)), *queued).values(claimed_at=None)
                          .execution_options(synchronize_session=False))
            s.commit()
            return gave_up
        return await self.db.run(work) if failures or held else []

    async def failed_events(self, limit: int = 100) -> list[EventRecord]:
        """Events set aside after their last allowed attempt, the latest to fail first."""
        query = (select(EventRow).where(EventRow.failed_at.is_not(None), EventRow.processed_at.is_(None))
                 .order_by(EventRow.failed_at.desc(), EventRow.id).limit(limit))
        rows = await self.db.read(lambda s: s.scalars(query).all())
        return [r.record() for r in rows]

    async def requeue(self, ids: Sequence[str]) -> dict[str, RequeueOutcome]:
        """Put failed events back in the queue with their attempts reset; what became of each id, in order.

        ``requeued``: it was failed and is queued again (it goes next for its account, after the
        account's events that went ahead meanwhile). Otherwise nothing changes: ``unknown`` (no
        such event), ``queued`` (not failed: still waiting or being tried) or ``processed``.
        """
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        stmt = (update(EventRow).where(EventRow.id.in_(wanted), EventRow.failed_at.is_not(None),
                                       EventRow.processed_at.is_(None))
                .values(attempts=0, last_error="", failed_at=None, claimed_at=None, retry_at=None)
                .returning(EventRow.id).execution_options(synchronize_session=False))
        others = select(EventRow.id, EventRow.processed_at).where(EventRow.id.in_(wanted))

        def work(s: Session) -> dict[str, RequeueOutcome]:
            done = set(s.scalars(stmt).all())
            seen = {r.id: r.processed_at for r in s.execute(others).all()}
            s.commit()
            answer: dict[str, RequeueOutcome] = {}
            for event_id in wanted:
                answer[event_id] = ("requeued" if event_id in done else "unknown" if event_id not in seen
                                    else "queued" if seen[event_id] is None else "processed")
            return answer
        return await self.db.run(work)

    async def pending_count(self) -> int:
        """How many stored events are still queued (not processed and not failed)."""
        return (await self.queue())[0]

    async def queue(self) -> tuple[int, datetime | None]:
        """How many stored events are still queued (not processed and not failed), and when the oldest came in."""
        query = select(func.count(), func.min(EventRow.received_at)).where(EventRow.processed_at.is_(None),
                                                                           EventRow.failed_at.is_(None))
        count, oldest = (await self.db.read(lambda s: s.execute(query).one()))
        return count or 0, None if oldest is None else utc(oldest, "received_at")

    async def events_for(self, account_id: str, *, since: datetime | None = None, types: Sequence[str] | None = None,
                         limit: int = 1000, newest_first: bool = False) -> list[EventRecord]:
        """An account's events that occurred at or after ``since``, of ``types`` (any when None), in time order."""
        query = select(EventRow).where(EventRow.account_id == account_id)
        if since is not None:
            query = query.where(EventRow.occurred_at >= utc(since, "since"))
        if types is not None:
            query = query.where(EventRow.type.in_(list(types)))
        order = (EventRow.occurred_at, EventRow.received_at, EventRow.id)
        query = query.order_by(*(c.desc() for c in order) if newest_first else order).limit(limit)
        rows = await self.db.read(lambda s: s.scalars(query).all())
        return [r.record() for r in rows]

    def counts(self) -> dict[str, int]:
        """How many rows each of the store's tables holds (for status output and tests)."""
        def work(s: Session) -> dict[str, int]:
            return {t.name: s.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}
        return self.db.call(work, engine=self.db.read_engine)


def _add_missing(engine: Engine) -> None:
    """Give an events table made by an older csops the columns and indexes added since.

    ``create_all`` makes missing tables only. Another process may add them at the same moment:
    then our ALTER fails, and the columns are there all the same.
    """
    table = Base.metadata.tables[EventRow.__tablename__]
    have = {c["name"] for c in inspect(engine).get_columns(table.name)}
    for column in (c for c in table.columns if c.name not in have):
        ddl = CreateColumn(column).compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
        except DBAPIError:
            if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                raise
    for index in table.indexes:
        index.create(engine, checkfirst=True)

