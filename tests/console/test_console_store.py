"""The console's tables and queries on SQLite and on a real PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from connectors.sqlcrm import SQLCRM
from engine.api.console import queries
from engine.store.console_auth import (
    add_user,
    audit,
    end_session,
    new_session,
    recent_audit,
    session_person,
    snooze,
    snoozed,
)
from engine.store.store import Store
from engine.store.store_models import AuditRow
from tests.console.seed import CSM, OPS, PASSWORD, recorded_run, seed_crm, seed_users

NOW = datetime(2026, 12, 2, 15, tzinfo=UTC)  # a Wednesday


async def test_the_console_tables_are_created_when_the_store_opens(db_url: str) -> None:
    store = Store(db_url)
    try:
        names = set(inspect(store.db.engine).get_table_names())
        assert {"console_users", "console_sessions", "console_audit", "console_snoozes"} <= names
    finally:
        store.close()


async def test_users_sessions_audit_and_snoozes(db_url: str) -> None:
    store = Store(db_url)
    try:
        await seed_users(store)
        assert await add_user(store, OPS, role="ops", password=PASSWORD) is False  # an update, not a second user
        opened = await new_session(store, OPS.upper(), PASSWORD, now=NOW)
        assert opened is not None
        token, who = opened
        assert (await session_person(store, token, now=NOW + timedelta(hours=11))) == who
        assert await session_person(store, token, now=NOW + timedelta(hours=12, seconds=1)) is None  # ended
        await end_session(store, token)
        assert await session_person(store, token, now=NOW) is None
        await audit(store, actor=CSM, action="complete_task", target="t-1", detail="x" * 5000, at=NOW)
        [row] = await recent_audit(store)
        assert (row.actor, row.action, row.target, len(row.detail)) == (CSM, "complete_task", "t-1", 4000)
        await snooze(store, "t-1", NOW.date() + timedelta(days=2), CSM)
        await snooze(store, "t-1", NOW.date() + timedelta(days=1), CSM)  # snoozed again: the new day
        assert await snoozed(store, NOW.date()) == {"t-1": NOW.date() + timedelta(days=1)}
        assert await snoozed(store, NOW.date() + timedelta(days=1)) == {}
    finally:
        store.close()


async def test_home_and_playbook_figures(db_url: str) -> None:
    store, crm = Store(db_url), SQLCRM(db_url)
    try:
        seed_crm(crm)
        acme = await recorded_run(store, crm, "save-plan", "acme", "u-carl", started=NOW - timedelta(days=3),
                                  due=NOW.date())
        await recorded_run(store, crm, "save-plan", "globex", "u-cora", started=NOW - timedelta(hours=1),
                           due=NOW.date() - timedelta(days=2))
        await recorded_run(store, crm, "other", "initech", "u-cora", started=NOW, due=None)
        await store.end_run("pb:other:initech:once", status="failed", reason="boom", at=NOW)
        await store.add_audit([AuditRow(run_id=acme, step="plan/escalate/0", status="done", at=NOW - timedelta(days=1)),
                               AuditRow(run_id=acme, step="plan/escalate/1", status="done", at=NOW - timedelta(days=3)),
                               AuditRow(run_id=acme, step="plan", status="done", at=NOW)])
        assert await queries.active_by_playbook(store) == [("save-plan", 2)]
        monday = datetime(2026, 11, 30, tzinfo=UTC)
        assert await queries.escalations_since(store, monday) == 1
        assert [r.run_id for r in await queries.failed_runs(store)] == ["pb:other:initech:once"]
        assert await queries.task_counts(store, NOW.date()) == (1, 1)
        assert await queries.bands(crm.db) == [("green", 2), ("", 1)]
        assert [(v, n) for v, _, n in await queries.versions(store, "save-plan")] == [("v" * 64, 2)]
        days = dict(await queries.runs_by_day(store, "save-plan", (NOW - timedelta(days=5)).date()))
        assert days[(NOW - timedelta(days=3)).date()] == 1 and sum(days.values()) == 2
        assert [t["run_id"] for t in await queries.run_tasks(store, account="acme")] == [acme]
        opened = await queries.run_tasks(store, open_only=True)
        assert [t["account_id"] for t in opened] == ["globex", "acme", "initech"]
        assert await queries.owned_accounts(crm.db, "cora@example.com") == ["globex", "initech"]
        assert [a.id for a in await queries.account_search(crm.db, "GLO")] == ["globex"]
        assert [a.id for a in await queries.account_search(crm.db, "%")] == []  # LIKE wildcards are not special
        for account, at, score in (("acme", monday - timedelta(days=1), 90.0), ("acme", monday, 80.0),
                                   ("acme", NOW, 35.0), ("globex", monday, 70.0), ("globex", NOW, 75.0),
                                   ("initech", NOW, 50.0)):
            await store.add_health(account, at, score)
        # Moves within the week, biggest first; the score before Monday and a lone score do not count.
        assert await queries.movers(store, monday) == [("acme", 80.0, 35.0), ("globex", 70.0, 75.0)]
    finally:
        store.close()
        crm.close()
