"""``run_tasks``: the CRM tasks csops runs created, as csops last saw them.

A run's step results say which task each task step created (id, assignee, title, due), which
escalations fired, and whether the run saw the task completed or closed it when it ended;
``runrecord.refresh`` copies that here with the step audit. The task inbox (``csops tasks``) and
the performance report read this table instead of asking the CRM for every task: the CRM has no
"tasks of this person" call common to every vendor. A task completed in the CRM outside csops is
seen when its run polls it, or when the inbox asks the CRM about the tasks it lists
(``engine.reports.inbox``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.payloads.runtypes import StepResult
from engine.store.store import Store
from engine.store.store_models import RunRecord, RunTaskRow, utc

__all__ = ["TASK_STATUSES", "close_task", "get_task", "save_tasks", "task_rows", "tasks"]

TASK_STATUSES = frozenset({"open", "completed", "cancelled"})


def task_rows(record: RunRecord, steps: Mapping[str, StepResult]) -> list[dict[str, Any]]:
    """The ``run_tasks`` rows a run's step results describe (one per task it created)."""
    rows = []
    for step, res in steps.items():
        if res.status != "done" or not isinstance(res.result, dict) or "task_id" not in res.result or "/" in step:
            continue
        if res.kind not in ("", "task"):
            continue
        out = res.result
        due = out.get("due") or ""
        completed, closed = steps.get(f"{step}/completed"), steps.get(f"{step}/closed")
        end = completed or closed
        fired = sum(1 for key, r in steps.items() if key.startswith(f"{step}/escalate/") and r.status == "done")
        rows.append({"task_id": str(out["task_id"]), "run_id": record.run_id, "step": step,
                     "playbook": record.playbook, "version": record.version, "account_id": record.account_id,
                     "assignee": str(out.get("assignee") or ""), "title": str(out.get("title") or ""),
                     "due": date.fromisoformat(due) if due else None,
                     "created_at": utc(datetime.fromisoformat(res.at)),
                     "status": "completed" if completed else "cancelled" if closed else "open",
                     "closed_at": utc(datetime.fromisoformat(end.at)) if end is not None and end.at else None,
                     "escalations": fired})
    return rows


async def save_tasks(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Record tasks, idempotently: a task's row is created once; later its escalation count only
    grows, and its status moves from open to completed or cancelled once (the first end is kept)."""
    if not rows:
        return
    dialect = store.db.engine.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(RunTaskRow)
    t = RunTaskRow.__table__.c
    still_open = t.status == "open"
    stmt = stmt.on_conflict_do_update(index_elements=[RunTaskRow.task_id], set_={
        "escalations": case((stmt.excluded.escalations > t.escalations, stmt.excluded.escalations),
                            else_=t.escalations),
        "status": case((still_open, stmt.excluded.status), else_=t.status),
        "closed_at": case((still_open, stmt.excluded.closed_at), else_=t.closed_at),
    })
    batch = sorted(rows, key=lambda r: r["task_id"])

    def work(s: Session) -> None:
        s.execute(stmt, batch)
        s.commit()
    await store.db.run(work)


async def close_task(store: Store, task_id: str, status: str, at: datetime | None = None) -> bool:
    """Note that an open task was completed or cancelled; False when it is not open (or unknown).

    Raises:
        ValueError: ``status`` is neither completed nor cancelled.
    """
    if status not in ("completed", "cancelled"):
        raise ValueError(f"a task is closed as completed or cancelled, not {status!r}")
    stmt = (update(RunTaskRow).where(RunTaskRow.task_id == task_id, RunTaskRow.status == "open")
            .values(status=status, closed_at=utc(at or datetime.now(UTC))).execution_options(synchronize_session=False))

    def work(s: Session) -> bool:
        count = s.execute(stmt).rowcount  # type: ignore[attr-defined]
        s.commit()
        return bool(count)
    return await store.db.run(work)


async def get_task(store: Store, task_id: str) -> RunTaskRow | None:
    """The task's row, or None."""
    def work(s: Session) -> RunTaskRow | None:
        row = s.get(RunTaskRow, task_id)
        if row is not None:
            s.expunge(row)
        return row
    return await store.db.read(work)


async def tasks(store: Store, *, owner: str | None = None, status: str | None = "open", overdue_on: date | None = None,
                limit: int = 100) -> list[RunTaskRow]:
    """Tasks, soonest due first (no due date last): of ``owner`` (an email, any case) and ``status``
    when given; with ``overdue_on``, only open tasks due before that day."""
    query = select(RunTaskRow)
    if owner:
        query = query.where(func.lower(RunTaskRow.assignee) == owner.casefold())
    if status:
        query = query.where(RunTaskRow.status == status)
    if overdue_on is not None:
        query = query.where(RunTaskRow.status == "open", RunTaskRow.due < overdue_on)
    query = query.order_by(RunTaskRow.due.is_(None), RunTaskRow.due, RunTaskRow.created_at, RunTaskRow.task_id)

    def work(s: Session) -> list[RunTaskRow]:
        rows = list(s.scalars(query.limit(limit)).all())
        for row in rows:
            s.expunge(row)
        return rows
    return await store.db.read(work)
