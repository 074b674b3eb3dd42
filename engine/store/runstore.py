"""The store's run side: trigger decisions, runs, the step audit, scan state and round-robin pools.

``Store`` (engine/store/store.py) is these tables plus the event queue; they are apart only to keep
each module small. ``RunTables`` uses the Store's ``db`` and ``_insert``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.orm import Session

from connectors.sqlcrm_models import Database
from engine.store.claims import bound_ids, one_of
from engine.store.cursor_models import PoolCursorRow, ScanStateRow
from engine.store.store_models import (
    AuditRow,
    DecisionRecord,
    DecisionRow,
    RunPage,
    RunRecord,
    RunRow,
    StepAuditRow,
    to_json,
    utc,
)

T = TypeVar("T")

RunSummary = tuple[str | None, datetime | None, frozenset[str]]
"""(active run id, when the last run ended, the occurrence keys used) of one playbook and account."""

ENDED_STATUSES = frozenset({"completed", "failed", "exited", "cancelled"})
MAX_DETAIL = 4000
"""Audit details longer than this many characters are cut (the full story is in Temporal's history)."""


class RunTables:
    """The run side of ``Store``: decisions, runs, audit, scan state, pools."""

    db: Database
    _insert: Any

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
        return await self.db.run(lambda s: commit_then(s, s.scalars(stmt, [row]).first() is not None))

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

    async def accounts_running(self, account_ids: Sequence[str]) -> set[str]:
        """Which of these accounts have a run the store has as running (one query for a batch of events)."""
        if not account_ids:
            return set()
        postgres = self.db.engine.dialect.name == "postgresql"
        query = _RUNNING.get(postgres)
        if query is None:  # built once, the ids bound as one parameter: it runs twice per round of processing
            query = _RUNNING[postgres] = (select(RunRow.account_id).where(one_of(RunRow.account_id, postgres),
                                                                          RunRow.status == "running").distinct())
        params = {"ids": bound_ids(account_ids, postgres)}
        return set(await self.db.read(lambda s: s.scalars(query, params).all()))

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

    async def run_summaries(self, playbook: str, ids: Sequence[str]) -> dict[str, RunSummary]:
        """Per account of ``ids``: the active run, when the last run ended, the used occurrence keys (what
        ``active_run``, ``last_ended`` and ``occurrences`` answer one account at a time), in one query."""
        # Core columns, not the ORM's: the same SQL, without the ORM's compile step and without setting up
        # every mapper when this is a worker's first read (its first daily scan: about 12 ms).
        runs = RunRow.__table__.c
        query = (select(runs.account_id, runs.run_id, runs.occurrence, runs.ended_at)
                 .where(runs.playbook == playbook, self.db.among(runs.account_id, ids))
                 .order_by(runs.account_id, runs.started_at, runs.id))

        def work(conn: Connection) -> dict[str, RunSummary]:
            out: dict[str, RunSummary] = {}
            for account_id, run_id, occurrence, ended_at in conn.execute(query):
                active, ended, keys = out.get(account_id, (None, None, frozenset()))
                if ended_at is None:
                    active = run_id  # rows come oldest first: the newest open run wins
                if ended_at is not None and (ended is None or ended_at > ended):
                    ended = ended_at
                out[account_id] = (active, ended, keys | {occurrence} if occurrence else keys)
            return out
        return await self.db.read_one(work)

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
        return await self.db.run(lambda s: commit_then(s, len(s.scalars(stmt, batch).all())))

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
        await self.db.run(lambda s: commit_then(s, s.execute(stmt)))

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
        counter = await self.db.run(lambda s: commit_then(s, s.scalars(stmt.returning(PoolCursorRow.counter)).one()))
        return int(counter) % size


_RUNNING: dict[bool, Any] = {}
"""``accounts_running``'s query, for PostgreSQL (True) and SQLite."""


def commit_then(session: Session, value: T) -> T:
    """Commit ``session``, then give ``value`` (for one-expression work functions)."""
    session.commit()
    return value


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
