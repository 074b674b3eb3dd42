"""The counts and lists the console's pages need that the store and the CRM do not offer one by one.

Store queries read the engine's tables (runs, step_audit, run_tasks, health_history), whatever
the CRM. Account queries (search, bands, owners) need the built-in SQL CRM (connectors/sqlcrm.py):
with another CRM (HubSpot, Salesforce) ``sql_crm`` is None and the pages leave those sections out
rather than show partial figures.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from connectors.sqlcrm_models import AccountRow, UserRow
from engine.store.store import Store
from engine.store.store_models import HealthRow, RunRecord, RunRow, RunTaskRow, StepAuditRow

__all__ = ["account_names", "account_search", "active_by_playbook", "bands", "escalations_since", "failed_runs",
           "movers", "owned_accounts", "run_tasks", "runs_by_day", "runs_of_accounts", "sql_crm", "task_counts",
           "user_names", "versions"]

ESCALATION = "%/escalate/%"
"""Step audit rows of escalations are named ``{task step}/escalate/{n}`` (engine/runtime/workflow.py)."""


def sql_crm(crm: Any) -> Any:
    """The built-in SQL CRM's database when ``crm`` is the built-in CRM, else None."""
    from connectors.sqlcrm import SQLCRM

    return crm.db if isinstance(crm, SQLCRM) else None


async def active_by_playbook(store: Store) -> list[tuple[str, int]]:
    """Running runs per playbook, most first."""
    n = func.count().label("n")
    query = (select(RunRow.playbook, n).where(RunRow.ended_at.is_(None)).group_by(RunRow.playbook)
             .order_by(n.desc(), RunRow.playbook))
    return [(r[0], int(r[1])) for r in await store.db.read(lambda s: s.execute(query).all())]


async def escalations_since(store: Store, since: datetime) -> int:
    """Escalations fired at or after ``since``."""
    query = select(func.count()).select_from(StepAuditRow).where(StepAuditRow.step.like(ESCALATION),
                                                                 StepAuditRow.at >= since)
    found: int | None = await store.db.read(lambda s: s.scalar(query))
    return int(found or 0)


async def failed_runs(store: Store, limit: int = 20) -> list[RunRecord]:
    """Runs that failed, latest first."""
    query = (select(RunRow).where(RunRow.status == "failed").order_by(RunRow.ended_at.desc(), RunRow.id.desc())
             .limit(limit))
    return [r.record() for r in await store.db.read(lambda s: s.scalars(query).all())]


async def runs_by_day(store: Store, playbook: str, since: date) -> list[tuple[date, int]]:
    """Runs of the playbook started per day from ``since`` (days without runs included, as 0)."""
    day = func.date(RunRow.started_at)
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    query = (select(day, func.count()).where(RunRow.playbook == playbook, RunRow.started_at >= start)
             .group_by(day))
    found = {str(r[0])[:10]: int(r[1]) for r in await store.db.read(lambda s: s.execute(query).all())}
    today = datetime.now(UTC).date()
    days = [since + timedelta(days=i) for i in range((today - since).days + 1)]
    return [(d, found.get(d.isoformat(), 0)) for d in days]


async def versions(store: Store, playbook: str) -> list[tuple[str, datetime, int]]:
    """Each version of the playbook runs were started with: (version, first run's start, runs), newest first."""
    first = func.min(RunRow.started_at)
    query = (select(RunRow.version, first, func.count()).where(RunRow.playbook == playbook)
             .group_by(RunRow.version).order_by(first.desc()))
    return [(r[0], r[1], int(r[2])) for r in await store.db.read(lambda s: s.execute(query).all())]


async def runs_of_accounts(store: Store, accounts: list[str], *, playbook: str | None, status: str | None,
                           limit: int) -> list[RunRecord]:
    """The latest runs of any of ``accounts`` (for the owner filter)."""
    if not accounts:
        return []
    query = select(RunRow).where(RunRow.account_id.in_(accounts))
    if playbook:
        query = query.where(RunRow.playbook == playbook)
    if status:
        query = query.where(RunRow.status == status)
    query = query.order_by(RunRow.started_at.desc(), RunRow.id.desc()).limit(limit)
    return [r.record() for r in await store.db.read(lambda s: s.scalars(query).all())]


async def owned_accounts(db: Any, owner: str, limit: int = 5000) -> list[str]:
    """Ids of the accounts ``owner`` (a CRM user id or email) owns."""
    def work(s: Session) -> list[str]:
        ids = {owner, *s.scalars(select(UserRow.id).where(func.lower(UserRow.email) == owner.lower())).all()}
        return list(s.scalars(select(AccountRow.id).where(AccountRow.owner_id.in_(ids)).limit(limit)).all())
    result: list[str] = await db.read(work)
    return result


async def account_search(db: Any, text: str, limit: int = 50, owner: str = "") -> list[Any]:
    """Accounts whose id or name contains ``text`` (any case), by name; every account (first ``limit``) for ''.
    Only those of ``owner`` (a CRM user id) when given."""
    cols = (AccountRow.id, AccountRow.name, AccountRow.segment, AccountRow.owner_id, AccountRow.health_score,
            AccountRow.health_band, AccountRow.arr, AccountRow.renewal_date)
    query = select(*cols)
    if text:
        # The text is matched as typed: LIKE's own wildcards in it are escaped.
        safe = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{safe}%"
        query = query.where(or_(func.lower(AccountRow.name).like(like, escape="\\"),
                                func.lower(AccountRow.id).like(like, escape="\\")))
    if owner:
        query = query.where(AccountRow.owner_id == owner)
    query = query.order_by(AccountRow.name, AccountRow.id).limit(limit)
    result: list[Any] = await db.read(lambda s: list(s.execute(query).all()))
    return result


async def bands(db: Any) -> list[tuple[str, int]]:
    """Accounts per health band as the CRM has it ("" = no band yet)."""
    query = select(AccountRow.health_band, func.count()).group_by(AccountRow.health_band)
    rows: list[Any] = await db.read(lambda s: s.execute(query).all())
    order = {"red": 0, "yellow": 1, "green": 2}
    return sorted(((r[0] or "", int(r[1])) for r in rows), key=lambda b: (order.get(b[0], 3), b[0]))


async def movers(store: Store, since: datetime, limit: int = 5) -> list[tuple[str, float, float]]:
    """Accounts whose health score moved most since ``since``: (account, first score, last score) in that
    window, biggest move first (only accounts with at least two scores in it)."""
    first = func.row_number().over(partition_by=HealthRow.account_id, order_by=(HealthRow.at, HealthRow.id))
    last = func.row_number().over(partition_by=HealthRow.account_id,
                                  order_by=(HealthRow.at.desc(), HealthRow.id.desc()))
    w = (select(HealthRow.account_id, HealthRow.score, first.label("f"), last.label("l"))
         .where(HealthRow.at >= since).subquery())
    start = func.max(case((w.c.f == 1, w.c.score)))
    end = func.max(case((w.c.l == 1, w.c.score)))
    query = (select(w.c.account_id, start, end).group_by(w.c.account_id).having(func.count() > 1)
             .order_by(func.abs(end - start).desc(), w.c.account_id).limit(limit))
    rows: list[Any] = await store.db.read(lambda s: list(s.execute(query).all()))
    return [(r[0], float(r[1]), float(r[2])) for r in rows if r[1] != r[2]]


async def run_tasks(store: Store, *, run_id: str | None = None, account: str | None = None,
                    open_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """The tasks runs created (the store's ``run_tasks``, any CRM), of a run or an account, due first;
    each as engine.reports.inbox.task_data gives it."""
    from engine.reports.inbox import task_data

    query = select(RunTaskRow)
    if run_id is not None:
        query = query.where(RunTaskRow.run_id == run_id)
    if account is not None:
        query = query.where(RunTaskRow.account_id == account)
    if open_only:
        query = query.where(RunTaskRow.status == "open")
    query = query.order_by(RunTaskRow.due.is_(None), RunTaskRow.due, RunTaskRow.created_at, RunTaskRow.task_id)
    today = datetime.now(UTC).date()

    def work(s: Session) -> list[dict[str, Any]]:
        return [task_data(r, today) for r in s.scalars(query.limit(limit)).all()]
    return await store.db.read(work)


async def task_counts(store: Store, today: date) -> tuple[int, int]:
    """Open tasks of runs due today, and overdue (due before today)."""
    base = select(func.count()).select_from(RunTaskRow).where(RunTaskRow.status == "open")
    due = base.where(RunTaskRow.due == today)
    late = base.where(RunTaskRow.due < today)

    def work(s: Session) -> tuple[int, int]:
        return int(s.scalar(due) or 0), int(s.scalar(late) or 0)
    return await store.db.read(work)


async def account_names(db: Any, ids: list[str]) -> dict[str, str]:
    """Account ids to names (the built-in CRM)."""
    query = select(AccountRow.id, AccountRow.name).where(AccountRow.id.in_(sorted(set(ids))))
    rows: list[Any] = await db.read(lambda s: list(s.execute(query).all())) if ids else []
    return {r[0]: r[1] for r in rows}


async def user_names(db: Any) -> dict[str, str]:
    """CRM user ids to display names (the email when a user has no name)."""
    rows: list[Any] = await db.read(lambda s: s.execute(select(UserRow.id, UserRow.name, UserRow.email)).all())
    return {r[0]: r[1] or r[2] for r in rows}
