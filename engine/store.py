"""The engine's store: events, health history, first uses, trigger decisions, runs and their step audit.

It lives in SQLite (the default, one file) or PostgreSQL, in its own tables beside the CRM and the
ledger (engine/store_models.py), through ``connectors.sqlcrm_models.Database``: one engine per URL,
units of work on worker threads, SQLite writers serialised by ``BEGIN IMMEDIATE``.

Everything that must happen once is decided by the database, not by a read before a write:
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells the one caller whose row went in (an event
id, a first use, a run, an audit row), and the round-robin counter is one atomic upsert. So
concurrent API servers and workers agree without locks of their own. Times are aware and stored
in UTC; a naive time is refused with a ValueError.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, cast

from sqlalchemy import ColumnElement, Engine, and_, exists, func, inspect, not_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.schema import CreateColumn

from connectors.sqlcrm_models import Database
from engine.store_models import (
    AuditRow,
    Base,
    DecisionRecord,
    DecisionRow,
    EventRecord,
    EventRow,
    FirstUseRow,
    HealthRow,
    PoolCursorRow,
    RunPage,
    RunRecord,
    RunRow,
    ScanStateRow,
    StepAuditRow,
    to_json,
    utc,
)
from engine.store_views import create_views

T = TypeVar("T")

__all__ = ["API_WRITE_WAIT", "LEASE", "MAX_ATTEMPTS", "AuditRow", "DecisionRecord", "EventLike", "EventRecord",
           "RequeueOutcome", "RunPage", "RunRecord", "Store", "retry_delay"]

ENDED_STATUSES = frozenset({"completed", "failed", "exited", "cancelled"})
USE_KINDS = frozenset({"feature", "product"})
MAX_DETAIL = 4000
"""Audit details longer than this many characters are cut (the full story is in Temporal's history)."""
LEASE = timedelta(minutes=5)
CLAIM_LOCK = 0x63736F7073636C6D  # "csopsclm": the PostgreSQL advisory lock claims of events take in turn
"""How long a claimed event stays with its processor before another may take it."""
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


class EventLike(Protocol):
    """What ``add_event`` takes: an ``EventRecord``, an ``engine.signals.EventSignal``, or alike."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


class Store:
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
        self.db = Database(database_url, Base.metadata)
        _add_missing(self.db.engine)
        create_views(self.db.engine)
        self._insert = pg_insert if backend == "postgresql" else sqlite_insert

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()

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
        rows: dict[str, dict[str, Any]] = {}
        for event in events:
            if event.id not in rows:
                rows[event.id] = _event_row(event, now)
        if not rows:
            return []
        # Sorted, so two batches sharing ids take PostgreSQL's row locks in the same order.
        batch = [rows[key] for key in sorted(rows)]
        stmt = self._insert(EventRow).on_conflict_do_nothing().returning(EventRow.id)
        inserted = set(await self._write(lambda s: _commit(s, s.scalars(stmt, batch).all()), wait))
        firsts: set[str] = set()
        answer = []
        for event in events:
            answer.append(event.id in inserted and event.id not in firsts)
            firsts.add(event.id)
        return answer

    async def _write(self, work: Callable[[Session], T], wait: float | None) -> T:
        """``db.run(work)``, waiting at most ``wait`` seconds for another writer's lock.

        SQLite: the connection's busy timeout, set before ``BEGIN IMMEDIATE`` takes the lock and
        restored after. PostgreSQL: ``SET LOCAL lock_timeout`` for the transaction.
        """
        engine = self.db.engine
        if wait is None or (engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")):
            return await self.db.run(work)
        ms = max(1, int(wait * 1000))
        loop = asyncio.get_running_loop()
        if engine.dialect.name != "sqlite":
            def limited(s: Session) -> T:
                s.execute(text(f"SET LOCAL lock_timeout = '{ms}ms'"))
                return work(s)

            return await loop.run_in_executor(_QUICK_WRITES, functools.partial(self.db.call, limited))

        def call() -> T:
            with engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                before = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout = {ms}")
                try:
                    # A Session over this connection begins it (BEGIN IMMEDIATE) and commits it.
                    return self.db.call(work, engine=cast(Engine, conn))
                finally:
                    raw.execute(f"PRAGMA busy_timeout = {int(before)}")

        return await loop.run_in_executor(_QUICK_WRITES, call)

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
        free = _free(EventRow, at, lease)
        earlier = aliased(EventRow)
        busy = not_(_free(earlier, at, lease))
        if ids is not None:
            busy = or_(busy, earlier.id.not_in(list(ids)))
        behind = exists().where(
            earlier.account_id == EventRow.account_id, earlier.processed_at.is_(None), earlier.failed_at.is_(None),
            or_(earlier.received_at < EventRow.received_at,
                and_(earlier.received_at == EventRow.received_at, earlier.id < EventRow.id)), busy)
        pick = select(EventRow.id).where(free, ~behind)
        if ids is not None:
            pick = pick.where(EventRow.id.in_(list(ids)))
        pick = pick.order_by(EventRow.received_at, EventRow.id).limit(limit)
        # The condition is checked again by the UPDATE itself, so of two claimers only one gets a row.
        stmt = (update(EventRow).where(EventRow.id.in_(pick.scalar_subquery()), free).values(claimed_at=at)
                .returning(EventRow).execution_options(synchronize_session=False))
        postgres = self.db.engine.dialect.name == "postgresql"

        def claim(s: Session) -> list[EventRecord]:
            if postgres:  # one claim at a time: else a claim that raced another could take an account's next event
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            return _commit(s, [r.record() for r in s.scalars(stmt).all()])
        rows = await self.db.run(claim)
        return sorted(rows, key=lambda r: (r.received_at, r.id))

    async def mark_processed(self, ids: Sequence[str], *, at: datetime | None = None) -> None:
        """Note that these events were processed, so no one claims them again."""
        if not ids:
            return
        stmt = (update(EventRow).where(EventRow.id.in_(list(ids)))
                .values(processed_at=utc(at or datetime.now(UTC), "at")).execution_options(synchronize_session=False))
        await self.db.run(lambda s: _commit(s, s.execute(stmt)))

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
        query = select(func.count()).select_from(EventRow).where(EventRow.processed_at.is_(None),
                                                                 EventRow.failed_at.is_(None))
        count: int | None = await self.db.read(lambda s: s.scalar(query))
        return count or 0

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
        return await self.db.run(lambda s: _commit(s, s.scalars(stmt, [row]).first() is not None))

    async def first_use(self, account_id: str, kind: str, name: str) -> tuple[datetime, str] | None:
        """When the account first used the feature or product, and the event that said so; None if never."""
        query = select(FirstUseRow.first_at, FirstUseRow.event_id).where(
            FirstUseRow.account_id == account_id, FirstUseRow.kind == kind, FirstUseRow.name == name)
        row = await self.db.read(lambda s: s.execute(query).first())
        return None if row is None else (row.first_at, row.event_id)

    # --- trigger decisions -----------------------------------------------------------------------

    async def add_decision(self, *, at: datetime, playbook: str, account_id: str, signal: Mapping[str, Any],
                           outcome: str, reason: str = "", message: str = "", occurrence: str = "",
                           run_id: str = "", seen: Mapping[str, Any] | None = None) -> int:
        """Record one trigger decision (fields as in ``DecisionRecord``); its id."""
        record = DecisionRecord(at=at, playbook=playbook, account_id=account_id, signal=dict(signal), outcome=outcome,
                                reason=reason, message=message, occurrence=occurrence, run_id=run_id,
                                seen=dict(seen or {}))
        return (await self.add_decisions([record]))[0]

    async def add_decisions(self, records: Sequence[DecisionRecord]) -> list[int]:
        """Record several decisions in one transaction (their ``id`` is ignored); their new ids, in order.

        Raises:
            ValueError: an outcome is not start, suppressed, started or failed; or a naive time.
            TypeError: ``signal`` or ``seen`` is not JSON.
        """
        rows = [DecisionRow.of(r) for r in records]

        def work(s: Session) -> list[int]:
            s.add_all(rows)
            s.commit()
            return [r.id for r in rows]
        return await self.db.run(work) if rows else []

    async def decisions(self, *, account_id: str | None = None, playbook: str | None = None,
                        limit: int = 50) -> list[DecisionRecord]:
        """Recorded decisions, newest first, for an account and/or playbook when given."""
        query = select(DecisionRow)
        if account_id is not None:
            query = query.where(DecisionRow.account_id == account_id)
        if playbook is not None:
            query = query.where(DecisionRow.playbook == playbook)
        rows = await self.db.read(lambda s: s.scalars(query.order_by(DecisionRow.id.desc()).limit(limit)).all())
        return [r.record() for r in rows]

    # --- runs ------------------------------------------------------------------------------------

    async def add_run(self, *, run_id: str, temporal_run_id: str = "", playbook: str, version: str, account_id: str,
                      occurrence: str = "", trigger: Mapping[str, Any] | None = None, started_at: datetime) -> bool:
        """Record a started run (status ``running``); True unless this execution is recorded already.

        An execution is (``run_id``, ``temporal_run_id``): pass Temporal's run id, or a later run
        under the same workflow id (after a cooldown) is taken for a repeat of the first.
        """
        row = {"run_id": run_id, "temporal_run_id": temporal_run_id, "playbook": playbook, "version": version,
               "account_id": account_id, "occurrence": occurrence, "status": "running", "reason": "",
               "trigger": to_json(trigger or {}, "a run's trigger"), "started_at": utc(started_at, "started_at"),
               "ended_at": None}
        stmt = self._insert(RunRow).on_conflict_do_nothing().returning(RunRow.id)
        return await self.db.run(lambda s: _commit(s, s.scalars(stmt, [row]).first() is not None))

    async def end_run(self, run_id: str, *, status: str, reason: str = "", at: datetime,
                      temporal_run_id: str = "") -> bool:
        """Mark the open execution of ``run_id`` (of ``temporal_run_id`` when given) ended.

        Returns False when there is none open: ending twice keeps the first ending.

        Raises:
            ValueError: ``status`` is not completed, failed, exited or cancelled; or ``at`` is naive.
        """
        if status not in ENDED_STATUSES:
            raise ValueError(f"a run ends completed, failed, exited or cancelled, not {status!r}")
        stmt = update(RunRow).where(RunRow.run_id == run_id, RunRow.ended_at.is_(None))
        if temporal_run_id:
            stmt = stmt.where(RunRow.temporal_run_id == temporal_run_id)
        stmt = stmt.values(status=status, reason=reason, ended_at=utc(at)).execution_options(synchronize_session=False)

        def work(s: Session) -> bool:
            result: CursorResult[Any] = s.execute(stmt)  # type: ignore[assignment]
            s.commit()
            return result.rowcount > 0
        return await self.db.run(work)

    async def active_run(self, playbook: str, account_id: str) -> str | None:
        """The run id of the playbook's run for the account that is still going, or None."""
        query = (select(RunRow.run_id).where(*_runs_of(playbook, account_id), RunRow.ended_at.is_(None))
                 .order_by(RunRow.started_at.desc(), RunRow.id.desc()).limit(1))
        return await self.db.read(lambda s: s.scalar(query))

    async def last_ended(self, playbook: str, account_id: str) -> datetime | None:
        """When the playbook's last run for the account ended (for the cooldown), or None."""
        query = select(func.max(RunRow.ended_at)).where(*_runs_of(playbook, account_id))
        return await self.db.read(lambda s: s.scalar(query))

    async def occurrences(self, playbook: str, account_id: str) -> set[str]:
        """Entry keys the playbook's runs for the account were started with ("" of keyless runs left out)."""
        query = select(RunRow.occurrence).where(*_runs_of(playbook, account_id), RunRow.occurrence != "").distinct()
        return set(await self.db.read(lambda s: s.scalars(query).all()))

    async def runs(self, *, account_id: str | None = None, playbook: str | None = None, status: str | None = None,
                   limit: int = 100, cursor: str | None = None) -> RunPage:
        """A page of runs, newest first, filtered when given; ``cursor`` is a page's ``next_cursor``.

        Raises:
            ValueError: the cursor is not one this store handed out.
        """
        query = select(RunRow)
        for column, value in ((RunRow.account_id, account_id), (RunRow.playbook, playbook), (RunRow.status, status)):
            if value is not None:
                query = query.where(column == value)
        if cursor is not None:
            at, row_id = _read_cursor(cursor)
            query = query.where(or_(RunRow.started_at < at, and_(RunRow.started_at == at, RunRow.id < row_id)))
        query = query.order_by(RunRow.started_at.desc(), RunRow.id.desc()).limit(limit + 1)
        rows = await self.db.read(lambda s: s.scalars(query).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return RunPage(runs=[r.record() for r in rows],
                       next_cursor=_make_cursor(rows[-1].started_at, rows[-1].id) if more and rows else None)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run with this workflow id (its latest execution), or None."""
        query = select(RunRow).where(RunRow.run_id == run_id).order_by(RunRow.started_at.desc(), RunRow.id.desc())
        row = await self.db.read(lambda s: s.scalars(query.limit(1)).first())
        return None if row is None else row.record()

    # --- step audit ------------------------------------------------------------------------------

    async def add_audit(self, rows: Sequence[AuditRow]) -> int:
        """Record step transitions in one transaction (their ``id`` is ignored); how many were new.

        A transition already recorded (same run, step, status and time) is not recorded again.
        """
        values: dict[tuple[str, str, str, datetime], dict[str, Any]] = {}
        for r in rows:
            at = utc(r.at)
            detail = r.detail if len(r.detail) <= MAX_DETAIL else r.detail[:MAX_DETAIL - 1] + "…"
            values.setdefault((r.run_id, r.step, r.status, at),
                              {"run_id": r.run_id, "step": r.step, "status": r.status, "at": at, "detail": detail,
                               "kind": r.kind, "planned_at": None if r.planned_at is None else utc(r.planned_at),
                               "sent": r.sent, "suppressed": r.suppressed, "capped": r.capped})
        if not values:
            return 0
        batch = [values[key] for key in sorted(values)]
        stmt = self._insert(StepAuditRow).on_conflict_do_nothing().returning(StepAuditRow.id)
        return await self.db.run(lambda s: _commit(s, len(s.scalars(stmt, batch).all())))

    async def timeline(self, run_id: str) -> list[AuditRow]:
        """The run's step transitions in time order."""
        query = select(StepAuditRow).where(StepAuditRow.run_id == run_id).order_by(StepAuditRow.at, StepAuditRow.id)
        rows = await self.db.read(lambda s: s.scalars(query).all())
        return [r.record() for r in rows]

    # --- scan state and round-robin pools --------------------------------------------------------

    async def last_scan(self, name: str) -> date | None:
        """The last day the named scan covered, or None before its first run."""
        return await self.db.read(lambda s: s.scalar(select(ScanStateRow.day).where(ScanStateRow.name == name)))

    async def set_last_scan(self, name: str, day: date) -> None:
        """Note that the named scan covered up to ``day`` (replacing the day noted before)."""
        stmt = self._insert(ScanStateRow).values(name=name, day=day)
        stmt = stmt.on_conflict_do_update(index_elements=[ScanStateRow.name], set_={"day": stmt.excluded.day})
        await self.db.run(lambda s: _commit(s, s.execute(stmt)))

    async def next_in_pool(self, team: str, size: int) -> int:
        """The next position (0 to ``size`` - 1) in the team's round robin; concurrent callers get turns in order.

        Raises:
            ValueError: ``size`` is below 1.
        """
        if size < 1:
            raise ValueError(f"team {team!r} has no one in its pool to assign to")
        stmt = self._insert(PoolCursorRow).values(team=team, counter=0)
        stmt = stmt.on_conflict_do_update(index_elements=[PoolCursorRow.team],
                                          set_={"counter": PoolCursorRow.counter + 1})
        counter = await self.db.run(lambda s: _commit(s, s.scalars(stmt.returning(PoolCursorRow.counter)).one()))
        return counter % size

    def counts(self) -> dict[str, int]:
        """How many rows each of the store's tables holds (for status output and tests)."""
        def work(s: Session) -> dict[str, int]:
            return {t.name: s.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}
        return self.db.call(work, engine=self.db.read_engine)


def _free(t: Any, at: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Whether an event row (of ``EventRow`` or an alias) can be claimed at ``at``."""
    return and_(t.processed_at.is_(None), t.failed_at.is_(None),
                or_(t.claimed_at.is_(None), t.claimed_at < at - lease), or_(t.retry_at.is_(None), t.retry_at <= at))


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


def _commit(session: Session, value: T) -> T:
    session.commit()
    return value


def _event_row(event: EventLike, received_at: datetime) -> dict[str, Any]:
    for what, value, longest in (("id", event.id, 255), ("type", event.type, 200),
                                 ("account_id", event.account_id, 255)):
        if not value or len(value) > longest:
            raise ValueError(f"an event's {what} must be 1 to {longest} characters, got {value!r:.80}")
    data = event.data if isinstance(event.data, dict) else dict(event.data)
    return {"id": event.id, "type": event.type, "account_id": event.account_id,
            "occurred_at": utc(event.occurred_at, "occurred_at"), "received_at": received_at,
            "data": to_json(data, f"the data of event {event.id}")}


def _runs_of(playbook: str, account_id: str) -> tuple[Any, ...]:
    return RunRow.playbook == playbook, RunRow.account_id == account_id


def _make_cursor(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, row_id = text.split("|")
        return utc(datetime.fromisoformat(at)), int(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"the cursor {cursor[:40]!r} is not one this store handed out; "
                         "start again without a cursor") from exc
