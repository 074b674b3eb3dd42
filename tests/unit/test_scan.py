"""The daily scan: the SQL date window, catch-up without duplicates, failures half-way, ticks.

The CRM and the store are real (SQLite, and PostgreSQL when there is one); ``start`` stands in for
Temporal's start with its one rule that matters here: a workflow id already started is "already
running".
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from connectors.base import Account, Contact, User
from connectors.sqlcrm import SQLCRM
from engine.language.context import Calendar
from engine.language.model import ContractMilestone, Playbook
from engine.language.validate import check_text
from engine.payloads.runcontext import view_data
from engine.store.store import Store
from engine.triggers.enrol import facts_for
from engine.triggers.explain import explain
from engine.triggers.matcher import milestone
from engine.triggers.scan import daily_scan, date_window, find_due, find_tick
from engine.triggers.signals import Decision

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 7, tzinfo=UTC)  # a Monday
TODAY = NOW.date()
BERLIN = Calendar(timezone="Europe/Berlin", holidays=frozenset({date(2026, 4, 3), date(2026, 4, 6)}))


def compile_text(text: str) -> Playbook:
    result = check_text(text, "<test>")
    assert [p.message for p in result.problems if p.severity == "error"] == []
    assert result.playbook is not None
    return result.playbook


def renewal_reminders() -> Playbook:
    return compile_text((ROOT / "playbooks" / "renewal-reminders.yaml").read_text("utf-8"))


MILESTONE = compile_text("""
playbook: kickoff
title: Kickoff
triggers:
  - contract_milestone: { field: fields.kickoff, days_before: 3 }
steps:
  - id: t
    task: { title: T }
""")

WEEKLY = compile_text("""
playbook: weekly
title: Weekly
triggers:
  - schedule: { cron: "0 9 * * 1", timezone: Europe/Berlin }
audience:
  segments: [smb]
steps:
  - id: t
    task: { title: T }
""")


class Temporal:
    """Workflow ids are unique: a second start of one is "already running"."""

    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.started: list[str] = []
        self.fail_for = fail_for or set()

    async def start(self, playbook: Playbook, decision: Decision) -> tuple[str, str]:
        if decision.account_id in self.fail_for:
            raise ConnectionError("Temporal is unreachable")
        if decision.run_id in self.started:
            return "already running", ""
        self.started.append(decision.run_id)
        return "started", f"temporal-{len(self.started)}"


@pytest.fixture
def parts(db_url: str) -> Iterator[tuple[SQLCRM, Store]]:
    crm, store = SQLCRM(db_url), Store(db_url)
    try:
        yield crm, store
    finally:
        crm.close()
        store.close()


def add(crm: SQLCRM, account_id: str, *, renewal: date | None = None, segment: str = "strategic",
        arr: float = 1000.0, **fields: str) -> None:
    crm.add_account(Account(id=account_id, name=account_id, segment=segment, lifecycle_stage="adopt", arr=arr,
                            renewal_date=renewal, fields=dict(fields)))


@pytest.mark.parametrize("n", [0, 1, 5, 90])
@pytest.mark.parametrize("before", [True, False])
@pytest.mark.parametrize("business", [False, True])
def test_the_sql_window_holds_every_date_the_matcher_fires_for(n: int, before: bool, business: bool) -> None:
    kw = {"days_before": n} if before else {"days_after": n}
    trig = ContractMilestone(field="renewal_date", business_days=business, **kw)
    for since, today in ((date(2026, 3, 27), date(2026, 4, 7)), (date(2026, 4, 3), date(2026, 4, 4)),
                         (date(2026, 1, 1), date(2026, 1, 2))):
        first, last = date_window(trig, since, today, BERLIN)
        fired = {d for d in (today + timedelta(days=k) for k in range(-400, 400))
                 if milestone(trig, d, BERLIN, today, since=since).fires}
        assert fired or business, (since, today)  # business milestones fall on workdays only
        assert all(first <= d <= last for d in fired), (sorted(fired), first, last)
        if not business:
            assert fired == {first + timedelta(days=k) for k in range((last - first).days + 1)}
        else:
            assert (last - first).days + 1 - len(fired) <= 2 * n // 5 + 6  # a little wider, never far


async def test_a_scan_starts_each_due_run_once_and_a_second_scan_that_day_starts_none(
        parts: tuple[SQLCRM, Store]) -> None:
    crm, store = parts
    playbook = renewal_reminders()
    add(crm, "due120", renewal=TODAY + timedelta(days=120))
    add(crm, "due90", renewal=TODAY + timedelta(days=90))
    add(crm, "tomorrow", renewal=TODAY + timedelta(days=121))
    add(crm, "yesterday", renewal=TODAY + timedelta(days=119))
    add(crm, "smb", renewal=TODAY + timedelta(days=120), segment="smb")
    add(crm, "free", renewal=TODAY + timedelta(days=120), arr=0)
    add(crm, "no-date")
    temporal = Temporal()

    report = await daily_scan(crm, store, [playbook], start=temporal.start, now=NOW, calendar=Calendar())

    assert sorted(temporal.started) == [f"pb:renewal-reminders:{a}:{d}" for a, d in
                                        (("due120", TODAY + timedelta(days=120)), ("due90", TODAY + timedelta(90)))]
    # The audience is filtered in SQL: the smb account (segments) and the free one (audience.when's
    # account.arr > 0, engine/triggers/whenfilter.py) are not candidates, and nothing is recorded for
    # them, as for a tick. csops explain evaluates the account live and still says why.
    assert (report.since, report.today, report.candidates, report.found, report.started, report.suppressed) == (
        TODAY - timedelta(days=1), TODAY, 2, 2, 2, 0)
    reasons = {d.account_id: d.reason for d in await store.decisions(playbook="renewal-reminders")}
    assert reasons == {"due120": "started", "due90": "started"}
    assert await store.last_scan("contract_milestone") == TODAY
    free = await crm.account_view("free")
    assert free is not None
    facts = await facts_for(store, playbook, view_data(free)["account"], now=NOW, calendar=Calendar())
    said = {c.name: (c.state, c.text) for c in explain(playbook, facts, TODAY)}
    assert said["audience.when"] == ("fail", "audience.when account.arr > 0 is false")

    again = await daily_scan(crm, store, [playbook], start=temporal.start, now=NOW + timedelta(hours=5),
                             calendar=Calendar())
    assert (again.since, again.found) == (None, 0)
    assert len(temporal.started) == 2
    assert len(await store.decisions(playbook="renewal-reminders")) == 2


async def test_three_missed_days_are_caught_up_once_each(parts: tuple[SQLCRM, Store]) -> None:
    crm, store = parts
    playbook = renewal_reminders()
    # Scanned up to 4 days ago; the server was down for 3 days; today's scan covers all four days.
    await store.set_last_scan("contract_milestone", TODAY - timedelta(days=4))
    for k in range(-1, 7):  # milestone days from 5 days ago to 1 day ahead (120-day trigger)
        add(crm, f"a{k}", renewal=TODAY + timedelta(days=120 - k))
    temporal = Temporal()
    await daily_scan(crm, store, [playbook], start=temporal.start, now=NOW, calendar=Calendar())
    assert sorted(temporal.started) == sorted(f"pb:renewal-reminders:a{k}:{TODAY + timedelta(days=120 - k)}"
                                              for k in range(4))
    # The same days scanned again (last_scan put back, as after a crash before it was noted): no new run.
    await store.set_last_scan("contract_milestone", TODAY - timedelta(days=4))
    await daily_scan(crm, store, [playbook], start=temporal.start, now=NOW, calendar=Calendar())
    assert len(temporal.started) == 4
    suppressed = [d for d in await store.decisions(playbook="renewal-reminders") if d.outcome == "suppressed"]
    assert [d.reason for d in suppressed] == ["already_active"] * 4
    # Once those runs ended, their occurrence keys still refuse a second run for the same renewal.
    for run_id in temporal.started:
        assert await store.end_run(run_id, status="completed", at=NOW)
    await store.set_last_scan("contract_milestone", TODAY - timedelta(days=4))
    await daily_scan(crm, store, [playbook], start=temporal.start, now=NOW, calendar=Calendar())
    assert len(temporal.started) == 4
    suppressed = [d for d in await store.decisions(playbook="renewal-reminders", limit=4)]
    assert [d.reason for d in suppressed] == ["duplicate_occurrence"] * 4
    # Tomorrow's milestone fires tomorrow, and only it.
    await daily_scan(crm, store, [playbook], start=temporal.start, now=NOW + timedelta(days=1), calendar=Calendar())
    assert temporal.started[4:] == [f"pb:renewal-reminders:a-1:{TODAY + timedelta(days=121)}"]


async def test_a_scan_that_fails_half_way_is_retried_without_duplicates(parts: tuple[SQLCRM, Store]) -> None:
    crm, store = parts
    playbook = renewal_reminders()
    for i in range(6):
        add(crm, f"acct-{i}", renewal=TODAY + timedelta(days=90))
    down = Temporal(fail_for={"acct-3"})
    with pytest.raises(ConnectionError):
        await daily_scan(crm, store, [playbook], start=down.start, now=NOW, calendar=Calendar(), batch=2)
    assert await store.last_scan("contract_milestone") is None  # not noted: the next attempt scans today again
    up = Temporal()
    up.started = list(down.started)
    report = await daily_scan(crm, store, [playbook], start=up.start, now=NOW, calendar=Calendar(), batch=2)
    assert sorted(up.started) == sorted(f"pb:renewal-reminders:acct-{i}:{TODAY + timedelta(days=90)}"
                                        for i in range(6))
    assert report.started == 6 - len(down.started)
    assert await store.last_scan("contract_milestone") == TODAY


async def test_custom_date_fields_business_days_and_the_calendar_zone(parts: tuple[SQLCRM, Store]) -> None:
    crm, store = parts
    # 23:30 UTC on Sunday is already Monday 2026-03-02 in Berlin.
    now = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    add(crm, "k-date", kickoff="2026-03-05")
    add(crm, "k-datetime", kickoff="2026-03-05T15:00:00+01:00")
    add(crm, "k-late", kickoff="2026-03-06")
    add(crm, "k-text", kickoff="soon")
    temporal = Temporal()
    report = await daily_scan(crm, store, [MILESTONE], start=temporal.start, now=now, calendar=BERLIN)
    assert report.today == date(2026, 3, 2)
    assert sorted(temporal.started) == ["pb:kickoff:k-date:2026-03-05", "pb:kickoff:k-datetime:2026-03-05"]


async def test_pages_are_read_in_id_order_and_filtered(parts: tuple[SQLCRM, Store]) -> None:
    crm, store = parts
    for i in range(7):
        add(crm, f"p{i}", renewal=date(2026, 6, 1 + i), segment="smb" if i % 2 else "strategic")
    crm.add_contact(Contact(id="c1", account_id="p2", email="x@example.com", primary=True))
    # A few days' window (found through the date index) and a long catch-up (a walk in id order): the same pages.
    for last, want in ((date(2026, 6, 6), [["p1", "p2", "p3"], ["p4", "p5"]]),
                       (date(2027, 6, 6), [["p1", "p2", "p3"], ["p4", "p5", "p6"]])):
        seen, after = [], None
        while page := await crm.list_accounts(after, 3, dates=[("renewal_date", date(2026, 6, 2), last)]):
            seen.append([a.id for a in page])
            after = page[-1].id
        assert seen == want
    assert [a.id for a in await crm.list_accounts(None, 10, segments=["smb"])] == ["p1", "p3", "p5"]
    views = await crm.account_views([a for a in await crm.list_accounts() if a.id in ("p2", "p3")])
    assert sorted(views) == ["p2", "p3"]
    assert [c.id for c in views["p2"].contacts] == ["c1"] and views["p3"].contacts == ()
    found, candidates = await find_due(crm, store, [renewal_reminders()], since=date(2026, 2, 1),
                                       today=date(2026, 2, 3), now=NOW, calendar=Calendar())
    assert [(f.decision.account_id, f.decision.reason) for f in found] == [("p2", "started")]  # p1 is smb
    assert candidates == 1


async def test_a_day_by_day_page_holds_exactly_the_next_ids_of_the_window(parts: tuple[SQLCRM, Store]) -> None:
    crm, _ = parts
    # Many accounts a day (ties on the date, ids interleaved over the days), more than a page, two ranges.
    first = date(2026, 6, 1)
    for i in range(40):
        segment = "smb" if i % 5 == 0 else "strategic"
        add(crm, f"w{(i * 17) % 40:02d}", renewal=first + timedelta(days=i % 6), segment=segment)
    ranges = [("renewal_date", first, first + timedelta(days=1)), ("renewal_date", first + timedelta(days=4),
                                                                   first + timedelta(days=4))]
    every = await crm.list_accounts(None, 100)
    want = sorted(a.id for a in every if a.segment == "strategic" and a.renewal_date is not None
                  and any(lo <= a.renewal_date <= hi for _, lo, hi in ranges))
    assert len(want) > 3 * 4
    seen, after = [], None
    while page := await crm.list_accounts(after, 4, dates=ranges, segments=["strategic"]):
        seen.append([a.id for a in page])
        after = page[-1].id
    assert seen == [want[i:i + 4] for i in range(0, len(want), 4)]
    assert await crm.list_accounts(None, 4, dates=[("renewal_date", first, first - timedelta(days=1))]) == []


async def test_an_older_database_gets_the_scan_index_but_no_unique_one(db_url: str) -> None:
    SQLCRM(db_url).close()
    Store(db_url).close()
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_accounts_renewal_date_id"))
            conn.execute(text("DROP INDEX ux_runs_execution"))  # the rows there might not hold it
        for _ in range(2):  # made once, then found
            SQLCRM(db_url).close()
            Store(db_url).close()
            assert "ix_accounts_renewal_date_id" in {i["name"] for i in inspect(engine).get_indexes("accounts")}
            assert "ux_runs_execution" not in {i["name"] for i in inspect(engine).get_indexes("runs")}
    finally:
        engine.dispose()


async def test_a_tick_goes_to_every_account_in_the_audience_once(parts: tuple[SQLCRM, Store]) -> None:
    crm, store = parts
    for i in range(5):
        add(crm, f"t{i}", segment="smb" if i < 3 else "strategic")
    at = datetime(2026, 3, 2, 8, tzinfo=UTC)  # Monday 09:00 in Berlin
    found = await find_tick(crm, store, [WEEKLY, dataclasses.replace(WEEKLY, id="off", enabled=False)],
                            cron="0 9 * * 1", timezone="Europe/Berlin", at=at, now=at, calendar=BERLIN, page=2)
    assert [(f.playbook.id, f.decision.account_id, f.decision.outcome) for f in found] == [
        ("weekly", f"t{i}", "start") for i in range(3)]
    assert {f.decision.occurrence for f in found} == {"2026-03-02T08:00:00+00:00"}
    assert await find_tick(crm, store, [WEEKLY], cron="0 9 * * 1", timezone="UTC", at=at, now=at,
                           calendar=BERLIN) == []


class OneCallEach(SQLCRM):
    """The built-in CRM seen as HubSpot or Salesforce are: no bulk views, every user read counted."""

    account_views = None  # type: ignore[assignment]

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.user_reads: Counter[str] = Counter()

    async def get_user(self, user_id_or_email: str) -> User | None:
        self.user_reads[user_id_or_email] += 1
        return await super().get_user(user_id_or_email)


async def test_a_crm_without_bulk_views_gets_the_same_decisions_and_each_user_is_read_once(db_url: str) -> None:
    crm, remote, store = SQLCRM(db_url), OneCallEach(db_url), Store(db_url)
    try:
        crm.add_user(User(id="mgr", email="m@example.com", name="Mia"))
        for owner in ("u1", "u2"):
            crm.add_user(User(id=owner, email=f"{owner}@example.com", name=owner, manager_id="mgr"))
        playbook = compile_text("""
playbook: owned
title: Owned renewals
triggers:
  - contract_milestone: { field: renewal_date, days_before: 30 }
audience:
  when: account.owner.manager.name == 'Mia' and contacts | length > 0
steps:
  - id: t
    task: { title: T }
""")
        for i in range(6):
            crm.add_account(Account(id=f"a{i}", name=f"a{i}", owner_id="u1" if i % 2 else "u2",
                                    renewal_date=TODAY + timedelta(days=30)))
            if i != 3:
                crm.add_contact(Contact(id=f"c{i}", account_id=f"a{i}", email=f"c{i}@example.com", primary=True))
        crm.add_account(Account(id="nobody", name="nobody", renewal_date=TODAY + timedelta(days=30)))
        args = {"since": TODAY - timedelta(days=1), "today": TODAY, "now": NOW, "calendar": Calendar(), "page": 4}
        bulk, _ = await find_due(crm, store, [playbook], **args)  # type: ignore[arg-type]
        one_by_one, _ = await find_due(remote, store, [playbook], **args)  # type: ignore[arg-type]
    finally:
        crm.close()
        remote.close()
        store.close()
    decided = [(f.decision.account_id, f.decision.reason) for f in one_by_one]
    assert decided == [(f.decision.account_id, f.decision.reason) for f in bulk]
    assert decided == [("a0", "started"), ("a1", "started"), ("a2", "started"), ("a3", "audience_when"),
                       ("a4", "started"), ("a5", "started"), ("nobody", "expression_error")]  # no owner to ask about
    assert remote.user_reads == Counter({"u1": 1, "u2": 1, "mgr": 1})  # 2 pages, each person read once


async def test_a_page_holds_the_same_accounts_as_reading_them_one_by_one(parts: tuple[SQLCRM, Store]) -> None:
    crm, _ = parts
    crm.add_account(Account(id="full", name="Full", segment="smb", lifecycle_stage="renew", owner_id=None, arr=12.5,
                            renewal_date=date(2026, 6, 1), contract_start=date(2025, 6, 1), renewal_status="open",
                            health_score=40, health_band="red", previous_health_score=70,
                            usage={"logins": 3}, fields={"tier": "gold"}))
    add(crm, "bare")
    for account in await crm.list_accounts(None, 10):
        assert account == await crm.get_account(account.id)
    # Columns a playbook does not read are left out: the accounts hold empty ones, the rest as stored.
    skipped = {a.id: a for a in await crm.list_accounts(None, 10, skip={"usage", "fields"})}
    stored = await crm.get_account("full")
    assert stored is not None and skipped["full"] == dataclasses.replace(stored, usage={}, fields={})
    # Plain columns too (a scan's playbook that reads neither the name nor the health): empty, as Account fills in.
    narrow = {a.id: a for a in await crm.list_accounts(None, 10, skip={"name", "health", "people", "contract_start"})}
    assert narrow["full"] == dataclasses.replace(stored, name="", health_score=None, health_band="",
                                                 previous_health_score=None, owner_id=None, contract_start=None)
