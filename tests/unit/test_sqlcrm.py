"""The built-in SQL CRM, on SQLite and on PostgreSQL (``db_url`` in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from connectors.base import (
    CRM,
    Account,
    AccountView,
    AccountViews,
    Contact,
    NewTask,
    PermanentError,
    RetryableError,
    User,
)
from connectors.sqlcrm import SQLCRM
from connectors.sqlcrm_models import ContactRow


@pytest.fixture
def crm(db_url: str) -> Iterator[SQLCRM]:
    """A CRM with one account, two contacts, and a CSM whose manager and backup exist."""
    crm = SQLCRM(db_url)
    crm.add_user(User(id="u-mgr", email="Maria@Example.com", name="Maria Manager", roles=("manager",)))
    crm.add_user(User(id="u-bak", email="bob@example.com", name="Bob Backup", backup_id="u-csm"))
    crm.add_user(User(id="u-csm", email="cara@example.com", name="Cara CSM", title="CSM", manager_id="u-mgr",
                      timezone="Europe/Berlin", out_of_office=True, backup_id="u-bak", roles=("csm", "ae")))
    crm.add_account(Account(id="a1", name="Acme", segment="smb", owner_id="u-csm", arr=12000.0,
                            renewal_date=date(2026, 3, 1), health_score=72, health_band="yellow",
                            usage={"reports": 3}, fields={"tier": "gold"}))
    crm.add_contact(Contact(id="c2", account_id="a1", email="zed@acme.test", first_name="Zed", role="billing"))
    crm.add_contact(Contact(id="c1", account_id="a1", email="ann@acme.test", first_name="Ann", role="champion",
                            primary=True))
    yield crm
    crm.close()


def task(title: str = "Call Acme", **kw: Any) -> NewTask:
    return NewTask(**{"account_id": "a1", "assignee_id": "u-csm", "title": title, **kw})


def test_is_a_crm(crm: SQLCRM) -> None:
    typed: CRM = crm  # mypy checks the Protocol; the test keeps the line honest
    assert typed is crm


async def test_get_account_round_trips_every_field(crm: SQLCRM) -> None:
    account = await crm.get_account("a1")
    assert account == Account(id="a1", name="Acme", segment="smb", owner_id="u-csm", arr=12000.0,
                              renewal_date=date(2026, 3, 1), health_score=72, health_band="yellow",
                              usage={"reports": 3}, fields={"tier": "gold"})
    assert await crm.get_account("nope") is None


async def test_contacts_primary_first(crm: SQLCRM) -> None:
    contacts = await crm.list_contacts("a1")
    assert [(c.id, c.primary, c.role) for c in contacts] == [("c1", True, "champion"), ("c2", False, "billing")]
    assert await crm.list_contacts("nope") == []


async def test_account_view_reads_what_the_four_calls_read(crm: SQLCRM) -> None:
    # The engine reads this before every step; it must agree with the plain CRM calls it replaces.
    view, account = await crm.account_view("a1"), await crm.get_account("a1")
    assert account is not None
    assert view == AccountView(account=account, owner=await crm.get_user("u-csm"),
                               manager=await crm.get_user("u-mgr"), contacts=tuple(await crm.list_contacts("a1")))
    assert isinstance(crm, AccountViews)
    crm.add_account(Account(id="a2", name="No Owner"))
    assert await crm.account_view("a2") == AccountView(account=Account(id="a2", name="No Owner"))
    crm.add_account(Account(id="a3", name="Managerless", owner_id="u-mgr"))
    managerless = await crm.account_view("a3")
    assert managerless is not None and managerless.owner is not None and managerless.owner.id == "u-mgr"
    assert managerless.manager is None and managerless.contacts == ()
    assert await crm.account_view("nope") is None


# Ids a CRM may hold that an array literal must quote (PostgreSQL binds a bulk read's ids as one array).
AWKWARD = ['q"uote', "back\\slash", "com,ma", "{brace}", " spaced ", "NULL", "", "\\\"", "tab\tnew\nline"]


async def test_bulk_views_find_ids_that_need_quoting(crm: SQLCRM) -> None:
    for i, account_id in enumerate(AWKWARD):
        crm.add_user(User(id=f"{account_id}-owner", email=f"o{i}@example.com", manager_id="u-mgr"))
        crm.add_account(Account(id=account_id, name=f"Account {i}", owner_id=f"{account_id}-owner"))
        crm.add_contact(Contact(id=f"c-{i}", account_id=account_id, email=f"p{i}@example.com"))
    accounts = [a for a in await crm.list_accounts(None, 100) if a.id in AWKWARD]
    assert sorted(a.id for a in accounts) == sorted(AWKWARD)
    views = await crm.account_views(accounts)
    for i, account_id in enumerate(AWKWARD):
        view = views[account_id]
        assert [c.id for c in view.contacts] == [f"c-{i}"]
        assert view.owner is not None and view.owner.id == f"{account_id}-owner"
        assert view.manager is not None and view.manager.id == "u-mgr"
    # An id longer than the column is nobody's, not the account its first 255 characters name.
    crm.add_account(Account(id="x" * 255, name="Long"))
    crm.add_contact(Contact(id="c-long", account_id="x" * 255, email="long@example.com"))
    query = select(ContactRow.id).where(crm.db.among(ContactRow.account_id, ["x" * 300, "x" * 254]))
    assert await crm.db.read(lambda s: s.scalars(query).all()) == []
    query = select(ContactRow.id).where(crm.db.among(ContactRow.account_id, ["x" * 255, *AWKWARD]))
    assert sorted(await crm.db.read(lambda s: s.scalars(query).all())) == sorted(["c-long", *(
        f"c-{i}" for i in range(len(AWKWARD)))])


async def test_get_user_by_id_and_by_email(crm: SQLCRM) -> None:
    by_id = await crm.get_user("u-csm")
    assert by_id is not None
    assert await crm.get_user("cara@example.com") == by_id
    assert await crm.get_user("maria@example.com") == await crm.get_user("u-mgr")  # email is case-insensitive
    assert await crm.get_user("nobody@example.com") is None


async def test_user_manager_backup_and_roles(crm: SQLCRM) -> None:
    user = await crm.get_user("u-csm")
    assert user == User(id="u-csm", email="cara@example.com", name="Cara CSM", title="CSM", manager_id="u-mgr",
                        timezone="Europe/Berlin", out_of_office=True, backup_id="u-bak", roles=("csm", "ae"))
    manager = await crm.get_user(user.manager_id or "")
    backup = await crm.get_user(user.backup_id or "")
    assert manager is not None and manager.roles == ("manager",) and manager.manager_id is None
    assert backup is not None and backup.backup_id == "u-csm" and not backup.out_of_office


async def test_create_task_is_idempotent_by_key(crm: SQLCRM) -> None:
    first = await crm.create_task(task(due=date(2026, 1, 5), priority="high"), "wf-1/step-a")
    again = await crm.create_task(task("A different title"), "wf-1/step-a")
    assert again == first
    assert (first.title, first.status, first.priority, first.due) == ("Call Acme", "open", "high", date(2026, 1, 5))
    assert crm.count_tasks() == 1
    other = await crm.create_task(task(), "wf-1/step-b")
    assert other.id != first.id
    assert crm.count_tasks() == 2
    assert await crm.get_task(first.id) == first


async def test_create_task_concurrently_with_one_key_makes_one_task(crm: SQLCRM) -> None:
    records = await asyncio.gather(*(crm.create_task(task(), "wf-2/race") for _ in range(8)))
    assert len({r.id for r in records}) == 1
    assert crm.count_tasks() == 1


async def test_create_task_concurrently_from_two_crm_instances(crm: SQLCRM, db_url: str) -> None:
    other = SQLCRM(db_url)  # a second worker process, as far as the database can tell
    try:
        a, b = await asyncio.gather(crm.create_task(task(), "wf-3/race"), other.create_task(task(), "wf-3/race"))
    finally:
        other.close()
    assert a == b
    assert crm.count_tasks() == 1


async def test_create_task_rejects_unknown_references(crm: SQLCRM) -> None:
    with pytest.raises(PermanentError, match="account nope"):
        await crm.create_task(task(account_id="nope"), "k1")
    with pytest.raises(PermanentError, match="user u-x"):
        await crm.create_task(task(assignee_id="u-x"), "k2")
    with pytest.raises(PermanentError, match="priority"):
        await crm.create_task(task(priority="urgent"), "k3")
    assert crm.count_tasks() == 0


async def test_complete_and_update_task(crm: SQLCRM) -> None:
    created = await crm.create_task(task(), "wf-4/t")
    done = crm.complete_task(created.id)
    assert done.status == "completed"
    assert (await crm.get_task(created.id)) == done
    reopened = await crm.update_task(created.id, status="open", assignee_id="u-bak", priority="low")
    assert (reopened.status, reopened.assignee_id, reopened.priority) == ("open", "u-bak", "low")
    closed = await crm.update_task(created.id, status="closed")
    assert closed.status == "completed"  # closed counts as completed
    with pytest.raises(PermanentError):
        await crm.update_task(created.id, status="archived")
    with pytest.raises(PermanentError):
        await crm.update_task(created.id, assignee_id="u-x")
    with pytest.raises(PermanentError):
        await crm.update_task("nope", status="completed")
    with pytest.raises(PermanentError):
        crm.complete_task("nope")


async def test_list_tasks_all_and_per_account(crm: SQLCRM) -> None:
    crm.add_account(Account(id="a2", name="Beta"))
    t1 = await crm.create_task(task("one"), "k1")
    t2 = await crm.create_task(task("two", account_id="a2"), "k2")
    assert crm.list_tasks() == [t1, t2]
    assert crm.list_tasks("a2") == [t2]


async def test_update_account_standard_fields(crm: SQLCRM) -> None:
    updated = await crm.update_account("a1", {
        "name": "Acme Corp", "segment": "commercial", "lifecycle_stage": "renew", "arr": "15000.5",
        "renewal_date": "2027-03-01", "contract_start": date(2024, 3, 1), "renewal_status": "open",
        "health_score": "40", "health_band": "red", "previous_health_score": 72, "owner": "bob@example.com",
    })
    assert updated == await crm.get_account("a1")
    assert (updated.name, updated.segment, updated.lifecycle_stage, updated.arr) == (
        "Acme Corp", "commercial", "renew", 15000.5)
    assert (updated.renewal_date, updated.contract_start) == (date(2027, 3, 1), date(2024, 3, 1))
    assert (updated.health_score, updated.health_band, updated.previous_health_score) == (40, "red", 72)
    assert updated.owner_id == "u-bak"
    assert updated.fields == {"tier": "gold"} and updated.usage == {"reports": 3}
    cleared = await crm.update_account("a1", {"renewal_date": "", "health_score": None, "owner_id": ""})
    assert (cleared.renewal_date, cleared.health_score, cleared.owner_id) == (None, None, None)


async def test_update_account_custom_fields(crm: SQLCRM) -> None:
    updated = await crm.update_account("a1", {"fields.tier": "platinum", "fields.qbr_on": date(2026, 2, 2),
                                              "fields.seats": 40, "fields.tags": ("a", "b")})
    assert updated.fields == {"tier": "platinum", "qbr_on": "2026-02-02", "seats": 40, "tags": ["a", "b"]}
    assert (await crm.get_account("a1")) == updated


@pytest.mark.parametrize(("changes", "message"), [
    ({"helth_score": 5}, "not a field"),
    ({"id": "a9"}, "not a field"),
    ({"usage": {}}, "not a field"),
    ({"fields.bad-name": 1}, "not a field"),
    ({"arr": "lots"}, "arr"),
    ({"arr": True}, "arr"),
    ({"arr": ""}, "arr"),
    ({"health_score": "101"}, "health_score"),
    ({"health_score": 7.5}, "health_score"),
    ({"renewal_date": "03/01/2026"}, "renewal_date"),
    ({"renewal_date": 20260301}, "renewal_date"),
    ({"health_band": "blue"}, "health_band"),
    ({"name": ""}, "name"),
    ({"segment": 3}, "segment"),
    ({"owner": "nobody@example.com"}, "owner"),
    ({"fields.when": object()}, "custom field"),
])
async def test_update_account_errors_change_nothing(crm: SQLCRM, changes: dict[str, Any], message: str) -> None:
    before = await crm.get_account("a1")
    with pytest.raises(PermanentError, match=message):
        await crm.update_account("a1", {"segment": "enterprise", **changes})
    assert await crm.get_account("a1") == before


async def test_update_account_unknown_account(crm: SQLCRM) -> None:
    with pytest.raises(PermanentError, match="account nope does not exist"):
        await crm.update_account("nope", {"segment": "smb"})


async def test_notes_are_idempotent_by_key(crm: SQLCRM) -> None:
    first = await crm.add_note("a1", "Kicked off the renewal play", "wf-5/note")
    assert await crm.add_note("a1", "something else", "wf-5/note") == first
    second = await crm.add_note("a1", "Second note", "wf-5/note-2")
    concurrent = await asyncio.gather(*(crm.add_note("a1", "Raced", "wf-5/race") for _ in range(5)))
    assert len(set(concurrent)) == 1
    notes = crm.list_notes("a1")
    assert [(n.id, n.text) for n in notes] == [(first, "Kicked off the renewal play"), (second, "Second note"),
                                               (concurrent[0], "Raced")]
    assert crm.list_notes("a2") == []
    with pytest.raises(PermanentError, match="account nope"):
        await crm.add_note("nope", "x", "wf-5/other")


async def test_setup_helpers_replace_and_data_survives_reopen(crm: SQLCRM, db_url: str) -> None:
    crm.add_account(Account(id="a1", name="Acme Renamed", fields={"tier": "silver"}))
    created = await crm.create_task(task(), "wf-6/t")
    reopened = SQLCRM(db_url)
    try:
        account = await reopened.get_account("a1")
        assert account is not None and (account.name, account.fields) == ("Acme Renamed", {"tier": "silver"})
        assert await reopened.get_task(created.id) == created
    finally:
        reopened.close()


def test_sqlite_file_folder_is_created(tmp_path: Path) -> None:
    crm = SQLCRM(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'crm.db'}")
    try:
        crm.add_account(Account(id="a1", name="Acme"))
        assert (tmp_path / "nested" / "dir" / "crm.db").exists()
    finally:
        crm.close()


async def test_in_memory_sqlite_is_shared_by_worker_threads() -> None:
    crm = SQLCRM("sqlite://")
    try:
        crm.add_account(Account(id="a1", name="Acme"))
        crm.add_user(User(id="u1", email="u1@example.com"))
        records = await asyncio.gather(*(crm.create_task(task(assignee_id="u1"), "k") for _ in range(4)))
        assert len({r.id for r in records}) == 1 and crm.count_tasks() == 1
    finally:
        crm.close()


def test_database_errors_become_connector_errors(crm: SQLCRM) -> None:
    def fail(exc: Exception) -> None:
        def work(_s: Session) -> None:
            raise exc
        crm.db.call(work)

    with pytest.raises(RetryableError, match="database unavailable") as retry:
        fail(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert "database is locked" in retry.value.detail
    with pytest.raises(PermanentError, match="refused a value"):
        fail(DataError("INSERT", {}, Exception("value too long")))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite does not enforce lengths
async def test_too_long_a_value_is_permanent_where_the_database_checks(crm: SQLCRM) -> None:
    with pytest.raises(PermanentError):
        await crm.create_task(task("x" * 2000), "wf-9/long")
    assert crm.count_tasks() == 0


async def test_cancelled_task_keeps_its_reason_and_is_not_completed(crm: SQLCRM) -> None:
    made = await crm.create_task(task(), "wf-9/t")
    cancelled = await crm.update_task(made.id, status="cancelled", reason="run exited: event account.churned arrived")
    assert (cancelled.status, cancelled.reason) == ("cancelled", "run exited: event account.churned arrived")
    assert await crm.get_task(made.id) == cancelled
    again = await crm.update_task(made.id, status="cancelled", reason="run exited: event account.churned arrived")
    assert again == cancelled
    done = crm.complete_task(made.id)  # done after all: the reason goes, the status says completed
    assert (done.status, done.reason) == ("completed", "")


def test_an_older_crm_database_gets_the_reason_column_when_opened(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/old.db"
    old = SQLCRM(url)
    old.add_user(User(id="u1", email="u1@example.com"))
    old.add_account(Account(id="a1", name="Acme", owner_id="u1"))
    made = asyncio.run(old.create_task(task(assignee_id="u1"), "k1"))
    old.close()
    with sqlite3.connect(tmp_path / "old.db") as db:  # as csops made it before tasks had a reason
        db.execute("ALTER TABLE tasks DROP COLUMN status_reason")
    crm = SQLCRM(url)
    try:
        assert [(t.id, t.status, t.reason) for t in crm.list_tasks()] == [(made.id, "open", "")]
        closed = asyncio.run(crm.update_task(made.id, status="cancelled", reason="run cancelled: paused"))
        assert (closed.status, closed.reason) == ("cancelled", "run cancelled: paused")
        SQLCRM(url).close()  # opening again finds the column there: nothing to add
    finally:
        crm.close()


async def test_get_account_is_one_statement(crm: SQLCRM) -> None:
    # Before every effect step the account is re-read: one SELECT on a plain connection, no
    # transaction statements around it on SQLite (a single statement reads a consistent snapshot).
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(crm.db.read_engine, "before_cursor_execute", seen)
    try:
        account = await crm.get_account("a1")
    finally:
        event.remove(crm.db.read_engine, "before_cursor_execute", seen)
    assert account is not None and account.name == "Acme"
    assert sent == ["SELECT"]
