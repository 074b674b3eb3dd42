"""HubSpotCRM.list_accounts (the AccountLister a date scan and schedule ticks page through) against
the loopback HubSpot's company search: every company once in numeric id order, date windows with
inclusive ends ORed, segment and stage filters ANDed, mapped custom date fields, HubSpot's filter
limits, a 429 in the middle, and paging past the search's 10,000-result cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from connectors.base import AccountLister, PermanentError, RetryableError
from connectors.hubspot import HubSpotCRM
from tests.fakes.hubspot import FakeHubSpot, HubSpotFaults

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
SEARCH = "/crm/v3/objects/companies/search"
BY_ID = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]


@dataclass
class World:
    fake: FakeHubSpot
    crm: HubSpotCRM


@pytest.fixture
async def w() -> AsyncIterator[World]:
    async with FakeHubSpot(TOKEN) as fake:
        fake.properties["companies"] |= {"csops_go_live": {"type": "date"}, "csops_kickoff_at": {"type": "datetime"}}
        crm = HubSpotCRM(TOKEN, base_url=fake.url, max_retries=3,
                         property_map={"fields.go_live": "csops_go_live", "fields.kickoff_at": "csops_kickoff_at"})
        try:
            yield World(fake, crm)
        finally:
            await crm.close()


def ms(day: date) -> str:
    return str(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000)


def searches(fake: FakeHubSpot) -> list[dict[str, Any]]:
    return [body for kind, body in fake.searches if kind == "companies"]


async def scan(crm: HubSpotCRM, page: int, **filters: Any) -> list[str]:
    """Page as engine/triggers/scan.py does: after = the last id, stop at a short page."""
    ids: list[str] = []
    after: str | None = None
    while True:
        accounts = await crm.list_accounts(after, page, **filters)
        ids += [a.id for a in accounts]
        if len(accounts) < page:
            return ids
        after = accounts[-1].id


def many(fake: FakeHubSpot, n: int) -> list[str]:
    fake._ids = 9_800  # ids 9801..: they cross 10000, where text order and number order part
    return [fake.add_company(name=f"Co {i}", csops_segment="smb", csops_arr=str(i)) for i in range(n)]


# --- paging ---------------------------------------------------------------------------------------

async def test_pages_through_every_company_once_in_numeric_order(w: World) -> None:
    ids = many(w.fake, 450)
    assert isinstance(w.crm, AccountLister)
    assert await scan(w.crm, 7) == ids  # 9801 ... 9999, 10000 ... 10250: numeric order, each once
    bodies = searches(w.fake)
    assert len(bodies) == 65  # 64 full pages of 7, then 2
    assert all(b["sorts"] == BY_ID and b["limit"] == 7 and "after" not in b for b in bodies)
    assert "filterGroups" not in bodies[0]
    assert bodies[1]["filterGroups"] == [{"filters": [{"propertyName": "hs_object_id", "operator": "GT",
                                                       "value": ids[6]}]}]
    first = (await w.crm.list_accounts(None, 1))[0]
    assert (first.id, first.name, first.segment, first.arr) == (ids[0], "Co 0", "smb", 0.0)


async def test_a_large_limit_is_read_200_at_a_time(w: World) -> None:
    ids = many(w.fake, 450)
    accounts = await w.crm.list_accounts(None, 1000)
    assert [a.id for a in accounts] == ids
    assert [b["limit"] for b in searches(w.fake)] == [200, 200, 200]  # HubSpot's most per answer
    assert [a.id for a in await w.crm.list_accounts(ids[99], 250)] == ids[100:350]


async def test_paging_goes_past_the_search_cap(w: World) -> None:
    """HubSpot's ``after`` cursor stops at 10,000 results; the fake's cap is 300 here, the same rule."""
    w.fake.search_cap = 300
    ids = many(w.fake, 450)
    async with httpx.AsyncClient(base_url=w.fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as raw:
        cursor_pages = [await raw.post(SEARCH, json={"limit": 100, "after": str(after)}) for after in (0, 200, 300)]
    assert [r.status_code for r in cursor_pages] == [200, 200, 400]  # the cursor cannot reach company 301
    assert cursor_pages[2].json()["category"] == "VALIDATION_ERROR"
    assert [a.id for a in await w.crm.list_accounts(None, 1000)] == ids  # id filters, never the cursor
    assert await scan(w.crm, 100) == ids


# --- filters ---------------------------------------------------------------------------------------

async def test_date_windows_include_both_ends_and_any_window_will_do(w: World) -> None:
    add = w.fake.add_company
    before = add(name="a", csops_renewal_date="2026-06-01")
    first = add(name="b", csops_renewal_date="2026-06-02")
    last = add(name="c", csops_renewal_date="2026-06-06")
    after = add(name="d", csops_renewal_date="2026-06-07")
    started = add(name="e", csops_contract_start="2025-01-01")
    add(name="f", csops_contract_start="2024-12-31")
    add(name="g")
    both = add(name="h", csops_renewal_date="2026-06-03", csops_contract_start="2025-01-01")
    window = ("renewal_date", date(2026, 6, 2), date(2026, 6, 6))
    start = ("contract_start", date(2025, 1, 1), date(2025, 1, 1))
    assert [a.id for a in await w.crm.list_accounts(dates=[window, start])] == [first, last, started, both]
    [body] = searches(w.fake)
    assert [g["filters"] for g in body["filterGroups"]] == [
        [{"propertyName": "csops_contract_start", "operator": "BETWEEN", "value": ms(date(2025, 1, 1)),
          "highValue": str(int(ms(date(2025, 1, 2))) - 1)}],
        [{"propertyName": "csops_renewal_date", "operator": "BETWEEN", "value": ms(date(2026, 6, 2)),
          "highValue": str(int(ms(date(2026, 6, 7))) - 1)}]]  # epoch ms from midnight UTC, to the end of the day
    # open ends, as engine.triggers.scan.date_window gives them when it cannot bound a window
    up_to = await w.crm.list_accounts(dates=[("renewal_date", date.min, date(2026, 6, 2))])
    from_ = await w.crm.list_accounts(dates=[("renewal_date", date(2026, 6, 6), date.max)])
    any_day = await w.crm.list_accounts(dates=[("renewal_date", date.min, date.max)])
    assert [a.id for a in up_to] == [before, first] and [a.id for a in from_] == [last, after]
    assert [a.id for a in any_day] == [before, first, last, after, both]
    assert [b["filterGroups"][0]["filters"][0]["operator"] for b in searches(w.fake)[1:]] == [
        "LTE", "GTE", "HAS_PROPERTY"]
    # touching windows of one field are one filter; an empty window asks HubSpot nothing
    joined = await w.crm.list_accounts(dates=[("renewal_date", date(2026, 6, 4), date(2026, 6, 6)),
                                              ("renewal_date", date(2026, 6, 2), date(2026, 6, 3))])
    assert [a.id for a in joined] == [first, last, both] and len(searches(w.fake)[-1]["filterGroups"]) == 1
    count = len(w.fake.searches)
    assert await w.crm.list_accounts(dates=[("renewal_date", date(2026, 6, 6), date(2026, 6, 2))]) == []
    assert len(w.fake.searches) == count


async def test_segment_and_stage_filters_go_with_the_dates(w: World) -> None:
    add = w.fake.add_company
    june = "2026-06-03"
    hit = add(name="a", csops_segment="strategic", lifecyclestage="customer", csops_renewal_date=june)
    add(name="b", csops_segment="strategic", lifecyclestage="lead", csops_renewal_date=june)
    smb = add(name="c", csops_segment="smb", lifecyclestage="customer", csops_renewal_date=june)
    add(name="d", csops_segment="strategic", lifecyclestage="customer", csops_renewal_date="2026-07-03")
    upper = add(name="e", csops_segment="SMB", lifecyclestage="lead")
    window = ("renewal_date", date(2026, 6, 1), date(2026, 6, 30))
    found = await w.crm.list_accounts(dates=[window], segments=["strategic"], lifecycle_stages=["customer"])
    assert [a.id for a in found] == [hit]
    [body] = searches(w.fake)
    assert [f["propertyName"] for f in body["filterGroups"][0]["filters"]] == [
        "csops_renewal_date", "csops_segment", "lifecyclestage"]
    # a tick: no dates; HubSpot matches string IN values in lowercase only, so both forms go
    ticked = await w.crm.list_accounts(segments=["SMB"], lifecycle_stages=["lead", "customer"])
    assert [a.id for a in ticked] == [smb, upper]  # the matcher then checks the audience exactly
    segment = searches(w.fake)[-1]["filterGroups"][0]["filters"][0]
    assert segment == {"propertyName": "csops_segment", "operator": "IN", "values": ["SMB", "smb"]}


async def test_custom_date_fields_go_through_the_property_map(w: World) -> None:
    add = w.fake.add_company
    live = add(name="a", csops_go_live="2026-03-05")
    add(name="b", csops_go_live="2026-03-06")
    late = add(name="c", csops_kickoff_at="2026-03-05T23:59:00.000Z")  # a datetime on the last day counts
    add(name="d", csops_kickoff_at="2026-03-06T00:00:00.000Z")
    march = (date(2026, 3, 1), date(2026, 3, 5))
    found = await w.crm.list_accounts(dates=[("fields.go_live", *march), ("fields.kickoff_at", *march)])
    assert [a.id for a in found] == [live, late]
    assert found[0].fields == {"go_live": "2026-03-05", "kickoff_at": None}
    assert {"csops_go_live", "csops_kickoff_at"} <= set(searches(w.fake)[0]["properties"])


@pytest.mark.parametrize(("call", "says"), [
    ({"dates": [("fields.churn_date", date(2026, 1, 1), date(2026, 1, 2))]},
     r"fields.churn_date is not mapped to a HubSpot property.*'fields.churn_date: <a date property of companies>'"
     r" to property_map"),
    ({"dates": [("arr", date(2026, 1, 1), date(2026, 1, 2))]}, "'arr' is not a date field of the account"),
    ({"after": "acme"}, "'acme' is not a HubSpot company id"),
])
async def test_what_cannot_be_searched_is_a_value_error(w: World, call: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        await w.crm.list_accounts(**call)
    assert w.fake.requests == []


async def test_many_windows_are_split_within_hubspot_filter_limits(w: World) -> None:
    days = [date(2026, 6, d) for d in (1, 4, 7, 10, 13, 16, 19)]  # seven windows, apart
    add = w.fake.add_company

    def on(day: date, segment: str = "smb") -> str:
        return add(name=str(day), csops_segment=segment, lifecyclestage="customer", csops_renewal_date=day.isoformat())
    x1, x2, x3, x4 = on(days[6]), on(days[0]), on(days[4]), on(days[1])
    on(date(2026, 6, 2))
    on(days[3], "strategic")
    x6 = on(days[5])
    filters: dict[str, Any] = {"dates": [("renewal_date", d, d) for d in days], "segments": ["smb"],
                               "lifecycle_stages": ["customer"]}
    assert await scan(w.crm, 2, **filters) == [x1, x2, x3, x4, x6]
    for body in searches(w.fake):
        groups = [g["filters"] for g in body["filterGroups"]]
        assert len(groups) <= 5 and max(map(len, groups)) <= 6 and sum(map(len, groups)) <= 18
    assert [len(b["filterGroups"]) for b in searches(w.fake)] == [4, 3] * 3  # 4 filters a group: 4 groups fit
    async with httpx.AsyncClient(base_url=w.fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as raw:
        seven = {"filterGroups": [{"filters": [{"propertyName": "csops_renewal_date", "operator": "EQ",
                                                "value": ms(d)}]} for d in days]}
        refused = await raw.post(SEARCH, json=seven)
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"


# --- failures --------------------------------------------------------------------------------------

async def test_a_429_in_the_middle_of_paging_is_retried(w: World) -> None:
    ids = many(w.fake, 30)
    assert isinstance(w.fake.faults, HubSpotFaults)
    w.fake.faults.retry_after = 0
    w.fake.faults.script = [None, "429"]  # the second page is rate-limited once
    assert await scan(w.crm, 10) == ids
    assert w.fake.faults.by_route[("POST", SEARCH, "429")] == 1
    assert [p for _, p in w.fake.requests].count(SEARCH) == 5  # 10 + 10 + 10 + the empty page, and the 429
    crm = HubSpotCRM(TOKEN, base_url=w.fake.url, max_retries=1)
    w.fake.faults.script = ["429", "429"]
    try:
        with pytest.raises(RetryableError, match="rate limit"):
            await crm.list_accounts(None, 10)
    finally:
        await crm.close()


async def test_a_missing_scope_is_named(w: World) -> None:
    w.fake.scopes.discard("crm.objects.companies.read")
    with pytest.raises(PermanentError, match=r"lacks the scope\(s\) crm.objects.companies.read needed to search "
                                             r"companies for a scan"):
        await w.crm.list_accounts(None, 10)


# --- the daily scan over HubSpot ------------------------------------------------------------------

async def test_the_daily_scan_over_hubspot_starts_the_due_renewals_and_skips_an_unfilterable_playbook(
        w: World, tmp_path: Any) -> None:
    from datetime import timedelta
    from pathlib import Path

    from engine.language.context import Calendar
    from engine.language.model import Playbook
    from engine.language.validate import check_text
    from engine.store.store import Store
    from engine.triggers.scan import daily_scan
    from engine.triggers.signals import Decision

    def compiled(text: str) -> Playbook:
        result = check_text(text, "<test>")
        assert result.playbook is not None, [p.message for p in result.problems]
        return result.playbook

    root = Path(__file__).resolve().parents[2]
    renewals = compiled((root / "playbooks" / "renewal-reminders.yaml").read_text("utf-8"))
    unmapped = compiled("playbook: golive\ntitle: Go-live\ntriggers:\n"
                        "  - contract_milestone: { field: fields.go_live_unmapped, days_before: 7 }\n"
                        "steps:\n  - id: t\n    task: { title: T }\n")
    now = datetime(2026, 3, 2, 7, tzinfo=UTC)
    today = now.date()
    owner = w.fake.add_owner("carl@example.com", "Carl", "CSM")
    due = {w.fake.add_company(name=f"Due {d}", csops_segment="strategic", csops_arr="1000", hubspot_owner_id=owner,
                              csops_renewal_date=(today + timedelta(days=d)).isoformat()): d for d in (120, 90)}
    w.fake.add_company(name="Later", csops_segment="strategic", csops_arr="1000",
                       csops_renewal_date=(today + timedelta(days=121)).isoformat())
    smb = w.fake.add_company(name="SMB", csops_segment="smb", csops_arr="1000",
                             csops_renewal_date=(today + timedelta(days=120)).isoformat())
    started: list[str] = []

    async def start(playbook: Playbook, decision: Decision) -> tuple[str, str]:
        started.append(decision.run_id)
        return "started", f"t-{len(started)}"

    store = Store(f"sqlite:///{tmp_path}/store.db")
    try:
        report = await daily_scan(w.crm, store, [renewals, unmapped], start=start, now=now, calendar=Calendar())
    finally:
        store.close()
    assert sorted(started) == sorted(f"pb:renewal-reminders:{cid}:{(today + timedelta(days=d)).isoformat()}"
                                     for cid, d in due.items())
    # smb is outside the audience's segments, which the scan asks HubSpot's search to filter: not even read.
    assert (report.found, report.started, report.suppressed) == (2, 2, 0)
    assert smb not in " ".join(started)
    [problem] = report.problems
    assert problem.startswith("playbook golive was skipped:") and "fields.go_live_unmapped" in problem
