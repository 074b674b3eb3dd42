"""SalesforceCRM.list_accounts (the AccountLister Protocol) against the loopback Salesforce: keyset
paging by 18-character Id over 450 accounts with mixed-case ids, date windows (inclusive, ORed),
segment and stage filters, custom and Date/Time fields, escaping, errors mid-paging, the query's
size limits, and the fake's SOQL subset itself."""

from __future__ import annotations

import logging
import random
import string
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import AccountLister, PermanentError, RetryableError
from connectors.salesforce import SalesforceCRM
from connectors.salesforce_list import MAX_URI
from tests.connectors.test_salesforce import CLIENT_ID, SECRET, TOKEN, connect
from tests.fakes.http import Scripted
from tests.fakes.salesforce import AnyOf, FakeSalesforce, Field, Query, SoqlError, parse_soql

N = 450
SEGMENTS = ("strategic", "commercial", "smb")
STAGES = ("onboard", "adopt", "expand", "renew")
START = date(2026, 3, 1)
FIELDS = {"renewal_date": "Renewal_Date__c", "contract_start": "Contract_Start__c", "fields.go_live": "Go_Live__c",
          "fields.Go_Live__c": "Go_Live__c", "fields.Last_QBR__c": "Last_QBR__c"}
Record = dict[str, Any]
Dates = Sequence[tuple[str, date, date]]


@dataclass
class Org:
    fake: FakeSalesforce
    faults: Scripted
    rows: dict[str, Record]

    def crm(self, **kw: Any) -> SalesforceCRM:
        return connect(self.fake, **kw)

    def last(self) -> Query:
        return parse_soql(self.fake.queries[-1])

    def expect(self, *, dates: Dates = (), segments: Sequence[str] = (), stages: Sequence[str] = ()) -> list[str]:
        """The ids the filters keep, worked out here from the seeded values, in 18-character id order."""
        def within(row: Record, name: str, first: date, last: date) -> bool:
            value = row.get(FIELDS[name])
            return value is not None and first <= date.fromisoformat(value[:10]) <= last

        return sorted(i for i, row in self.rows.items()
                      if (not dates or any(within(row, *d) for d in dates))
                      and (not segments or row["Segment__c"] in segments)
                      and (not stages or row["Lifecycle_Stage__c"] in stages))


def seed(fake: FakeSalesforce) -> dict[str, Record]:
    """N accounts with random 15-character ids in mixed case (the fake keeps their 18-character form)."""
    rng = random.Random(7)
    alphabet = string.digits + string.ascii_letters
    rows = {}
    for i in range(N):
        row = {"Name": f"Account {i:03d}", "Segment__c": SEGMENTS[i % 3], "Lifecycle_Stage__c": STAGES[i % 4],
               "Renewal_Date__c": None if i % 10 == 3 else (START + timedelta(days=i % 40)).isoformat(),
               "Contract_Start__c": (date(2023, 1, 1) + timedelta(days=i % 30)).isoformat(),
               "Go_Live__c": (date(2025, 6, 1) + timedelta(days=i % 20)).isoformat(),
               "Last_QBR__c": f"{date(2026, 1, 1) + timedelta(days=i % 5)}T"
                              f"{'00:00:00' if i % 2 else '23:59:59'}.000+0000"}
        rows[fake.add("Account", Id="001" + "".join(rng.choice(alphabet) for _ in range(12)), **row)] = row
    return rows


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    faults = Scripted(retry_after=0)
    async with FakeSalesforce(faults, client_id=CLIENT_ID, client_secret=SECRET, access_token=TOKEN,
                              page_size=30) as fake:
        fake.schema["Account"]["Go_Live__c"] = Field("date")
        yield Org(fake, faults, seed(fake))


@pytest.fixture
async def crm(org: Org) -> AsyncIterator[SalesforceCRM]:
    crm = org.crm(field_map={"fields.go_live": "Go_Live__c"})
    yield crm
    await crm.close()


async def pages(crm: SalesforceCRM, limit: int, *, after: str | None = None,
                **filters: Any) -> tuple[list[str], list[int]]:
    """Page as engine/triggers/scan.py does: on from the last id, until a short page. Ids and page sizes."""
    ids: list[str] = []
    sizes: list[int] = []
    while True:
        page = await crm.list_accounts(after, limit, **filters)
        ids += [a.id for a in page]
        sizes.append(len(page))
        if len(page) < limit:
            return ids, sizes
        after = page[-1].id


async def test_it_is_an_account_lister(crm: SalesforceCRM) -> None:
    assert isinstance(crm, AccountLister)


@pytest.mark.parametrize(("limit", "sizes"), [(40, [40] * 11 + [10]), (45, [45] * 10 + [0]), (1000, [N])])
async def test_pages_give_every_account_once_in_id_order(org: Org, crm: SalesforceCRM, limit: int,
                                                         sizes: list[int]) -> None:
    ids, got = await pages(crm, limit)
    assert ids == sorted(org.rows) and len(set(ids)) == N and got == sizes
    assert sorted(ids, key=str.lower) != ids  # mixed case: an order that ignored case would differ
    queries = [parse_soql(q) for q in org.fake.queries]
    assert len(queries) == len(sizes)
    assert all(q.order == ("Id", False) and q.limit == limit and q.obj == "Account" for q in queries)
    assert queries[0].where == () and [q.where for q in queries[1:]] == [
        (("Id", ">", ids[limit * n - 1]),) for n in range(1, len(sizes))]
    more = [p for _, p in org.fake.requests if "/query/01g" in p]  # 30-row batches: nextRecordsUrl followed
    assert len(more) == sum((s - 1) // 30 for s in sizes if s)


async def test_an_after_of_15_characters_or_another_case_pages_on_from_the_same_account(
        org: Org, crm: SalesforceCRM) -> None:
    ordered = sorted(org.rows)
    mid = ordered[100]
    assert mid != mid.lower() and mid != mid.upper()
    for after in (mid, mid[:15], mid.lower(), mid.upper()):
        page = await crm.list_accounts(after, 5)
        assert [a.id for a in page] == ordered[101:106]
        assert org.last().where == (("Id", ">", mid),)  # always sent as the 18-character id
    sent = len(org.fake.queries)
    for bad in ("001abc", mid[:15] + "99Z", "001' OR Name != '", mid + "x"):
        with pytest.raises(ValueError, match="is not a Salesforce id"):
            await crm.list_accounts(bad, 5)
    assert len(org.fake.queries) == sent


async def test_date_windows_include_both_ends_and_any_range_counts(org: Org, crm: SalesforceCRM) -> None:
    dates = [("renewal_date", START + timedelta(days=10), START + timedelta(days=19)),
             ("contract_start", date(2023, 1, 10), date(2023, 1, 10))]
    ids, _ = await pages(crm, 50, dates=dates)
    assert ids == org.expect(dates=dates) and len(ids) == 99 + 15 - 3  # by renewal, by contract start, by both
    renewals = {org.rows[i]["Renewal_Date__c"] for i in ids}
    assert {"2026-03-11", "2026-03-20"} <= renewals  # both ends are in
    just_out = {i for i, r in org.rows.items() if r["Renewal_Date__c"] in ("2026-03-10", "2026-03-21")}
    kept = just_out & set(ids)  # the days next to the range only by the contract start range
    assert kept and just_out - kept and all(org.rows[i]["Contract_Start__c"] == "2023-01-10" for i in kept)
    where = org.last().where[0]
    assert isinstance(where, AnyOf) and where.options == (
        (("Renewal_Date__c", ">=", date(2026, 3, 11)), ("Renewal_Date__c", "<=", date(2026, 3, 20))),
        (("Contract_Start__c", ">=", date(2023, 1, 10)), ("Contract_Start__c", "<=", date(2023, 1, 10))))
    assert "Renewal_Date__c >= 2026-03-11 AND" in org.fake.queries[-1]  # a date literal is not quoted


async def test_segments_and_stages_apply_together_with_the_dates(org: Org, crm: SalesforceCRM) -> None:
    dates = [("renewal_date", START, START + timedelta(days=14))]
    both: dict[str, Any] = {"segments": ["strategic", "smb"], "lifecycle_stages": ["renew", "expand"]}
    ids, _ = await pages(crm, 20, dates=dates, **both)
    assert ids and ids == org.expect(dates=dates, segments=both["segments"], stages=both["lifecycle_stages"])
    assert org.last().where[:4] == (("Renewal_Date__c", ">=", START), ("Renewal_Date__c", "<=", date(2026, 3, 15)),
                                    ("Segment__c", "IN", ("strategic", "smb")),
                                    ("Lifecycle_Stage__c", "IN", ("renew", "expand")))
    tick, _ = await pages(crm, 33, segments=["commercial"], lifecycle_stages=["onboard", "onboard"])
    assert tick == org.expect(segments=["commercial"], stages=["onboard"]) and len(tick) == N // 12 + 1
    assert org.last().where[:2] == (("Segment__c", "IN", ("commercial",)), ("Lifecycle_Stage__c", "IN", ("onboard",)))


async def test_custom_date_fields_by_alias_or_api_name_and_date_time_days(org: Org, crm: SalesforceCRM) -> None:
    window = [("fields.go_live", date(2025, 6, 3), date(2025, 6, 4))]
    by_alias, _ = await pages(crm, 100, dates=window)
    assert by_alias == org.expect(dates=window) and len(by_alias) == 46
    page = await crm.list_accounts(None, 3, dates=window)
    assert [a.fields["go_live"] for a in page] == [org.rows[a.id]["Go_Live__c"] for a in page]
    by_name, _ = await pages(crm, 100, dates=[("fields.Go_Live__c", date(2025, 6, 3), date(2025, 6, 4))])
    assert by_name == by_alias

    # Date/Time: the UTC days, from 00:00:00 to 23:59:59 of the last one.
    qbr = [("fields.Last_QBR__c", date(2026, 1, 2), date(2026, 1, 3))]
    ids, _ = await pages(crm, 100, dates=qbr)
    assert ids == org.expect(dates=qbr) and len(ids) == 2 * N // 5
    kept = {org.rows[i]["Last_QBR__c"][:19] for i in ids}
    assert kept == {"2026-01-02T00:00:00", "2026-01-02T23:59:59", "2026-01-03T00:00:00", "2026-01-03T23:59:59"}
    assert "Last_QBR__c >= 2026-01-02T00:00:00Z AND Last_QBR__c < 2026-01-04T00:00:00Z" in org.fake.queries[-1]


async def test_open_ended_and_empty_windows(org: Org, crm: SalesforceCRM) -> None:
    dated = [i for i, r in sorted(org.rows.items()) if r["Renewal_Date__c"]]
    ids, _ = await pages(crm, 1000, dates=[("renewal_date", date.min, date.max)])
    assert ids == dated and len(ids) == N - 45
    assert org.last().where == (("Renewal_Date__c", "!=", None),)  # no literal outside 1700-4000
    until = [("renewal_date", date(1, 1, 1), START)]
    assert [a.id for a in await crm.list_accounts(None, 1000, dates=until)] == org.expect(dates=until)
    assert org.last().where == (("Renewal_Date__c", "<=", START),)
    sent = len(org.fake.queries)
    assert await crm.list_accounts(None, 10, dates=[("renewal_date", START, START - timedelta(days=1))]) == []
    assert await crm.list_accounts(None, 0) == []
    assert len(org.fake.queries) == sent  # nothing can match: no call


async def test_a_listed_account_is_the_account_get_account_reads(org: Org, crm: SalesforceCRM) -> None:
    org.fake.rows["Account"][sorted(org.rows)[7]].update(Tier__c="gold", Seats__c=12, ARR__c=5000.0)
    page = await crm.list_accounts(None, 10)
    for listed in page:
        assert listed == await crm.get_account(listed.id)
    assert page[7].fields["Tier__c"] == "gold" and page[7].arr == 5000.0  # unmapped custom fields too


@pytest.mark.parametrize(("field_map", "filters", "message"), [
    ({"renewal_date": ""}, {"dates": [("renewal_date", START, START)]}, "renewal_date is not mapped to a Salesforce "
     "field (field_map.renewal_date is empty)"),
    ({}, {"dates": [("fields.nps", START, START)]}, "fields.nps is not mapped to a Salesforce field, so the scan "
     "cannot filter on it: set field_map.fields.nps"),
    ({}, {"dates": [("health_score", START, START)]}, "'health_score' is not a date field of the account"),
    ({}, {"dates": [("fields.Tier__c", START, START)]}, "Account.Tier__c is a string field; a date scan needs a Date"),
    ({"fields.seats": "Seats__c"}, {"dates": [("fields.seats", START, START)]}, "Account.Seats__c is a int field"),
    ({}, {"dates": [("fields.Nope__c", START, START)]}, "Salesforce accounts have no field Nope__c"),
    ({"lifecycle_stage": "Stage__c"}, {"lifecycle_stages": ["renew"]}, "accounts have no field Stage__c"),
    ({"segment": ""}, {"segments": ["smb"]}, "segment is not mapped to a Salesforce field"),
])
async def test_fields_that_cannot_be_filtered_on_are_value_errors(org: Org, field_map: dict[str, str],
                                                                  filters: dict[str, Any], message: str) -> None:
    crm = org.crm(field_map=field_map)
    try:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await crm.list_accounts(None, 10, **filters)
    finally:
        await crm.close()
    assert org.fake.queries == []


async def test_filter_values_are_escaped(org: Org, crm: SalesforceCRM) -> None:
    hostile = ["o'neil", "back\\slash", "x') OR (Name != '", "\\'", "new\nline", "tab\there", "é ü", "%_*", "'"]
    made = sorted(org.fake.add("Account", Name=f"H{i}", Segment__c=s) for i, s in enumerate(hostile))
    org.fake.add("Account", Name="Near miss", Segment__c="o'neil x")
    ids, _ = await pages(crm, 4, segments=hostile)
    assert ids == made
    assert org.last().where[0] == ("Segment__c", "IN", tuple(hostile))  # each value arrived as one literal


async def test_an_expired_token_mid_paging_is_renewed(org: Org, crm: SalesforceCRM) -> None:
    first = await crm.list_accounts(None, 100)
    org.fake.expire_tokens()
    rest, _ = await pages(crm, 100, after=first[-1].id)
    assert [a.id for a in first] + rest == sorted(org.rows) and org.fake.tokens_issued == 2

    org.fake.tokens.add(TOKEN)
    given = org.crm(auth={"access_token": TOKEN})
    try:
        page = await given.list_accounts(None, 100)
        org.fake.expire_tokens()
        with pytest.raises(PermanentError, match="INVALID_SESSION_ID while listing accounts: the access token is "
                           "invalid or expired"):
            await given.list_accounts(page[-1].id, 100)
    finally:
        await given.close()


async def test_the_api_request_limit_mid_paging_is_retryable_and_paging_resumes(org: Org,
                                                                                crm: SalesforceCRM) -> None:
    seen = await crm.list_accounts(None, 60)
    seen += await crm.list_accounts(seen[-1].id, 60)
    org.fake.request_limit_exceeded = "TotalRequests Limit exceeded."
    with pytest.raises(RetryableError, match="REQUEST_LIMIT_EXCEEDED while listing accounts: the org's API "
                       "request limit is used up") as caught:
        await crm.list_accounts(seen[-1].id, 60)
    assert caught.value.retry_after == 1800.0
    org.fake.request_limit_exceeded = ""  # the scan is retried later, from the page it was on
    rest, _ = await pages(crm, 60, after=seen[-1].id)
    assert [a.id for a in seen] + rest == sorted(org.rows)


async def test_5xx_and_dropped_answers_mid_paging(org: Org, crm: SalesforceCRM) -> None:
    seen = await crm.list_accounts(None, 40)
    org.faults.script = [None, "5xx", "drop_after"]  # the query, then its nextRecordsUrl page twice
    seen += await crm.list_accounts(seen[-1].id, 40)
    assert org.faults.injected == {"5xx": 1, "drop_after": 1} and len(seen) == 80
    org.faults.script = ["5xx"] * 3  # more than max_retries: left to the scan's own retry
    with pytest.raises(RetryableError, match=r"internal error \(HTTP 5\d\d\) while listing accounts"):
        await crm.list_accounts(seen[-1].id, 40)
    rest, _ = await pages(crm, 40, after=seen[-1].id)
    assert [a.id for a in seen] + rest == sorted(org.rows)


async def test_a_query_stays_within_salesforces_uri_limit(org: Org, crm: SalesforceCRM) -> None:
    many = [f"segment-{i:04d}" for i in range(600)]
    org.fake.add("Account", Name="Far down the list", Segment__c=many[-1])
    assert [a.name for a in await crm.list_accounts(None, 10, segments=many)] == ["Far down the list"]
    uri = httpx.URL("/services/data/v61.0/query", params={"q": org.fake.queries[-1]}).raw_path
    assert MAX_URI - 2_000 < len(uri) < MAX_URI  # a long one, and the fake (as Salesforce) took it
    sent = len(org.fake.queries)
    with pytest.raises(ValueError, match=r"the scan's filter is too long for one Salesforce query \(\d+ bytes, at "
                       "most 15000\\): use fewer segments"):
        await crm.list_accounts(None, 10, segments=[f"segment-{i:04d}" for i in range(800)])
    assert len(org.fake.queries) == sent


async def test_too_many_custom_fields_fall_back_to_the_mapped_ones(org: Org, crm: SalesforceCRM,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    for i in range(700):
        org.fake.schema["Account"][f"Imported_Field_Number_{i:03d}__c"] = Field("string")
    caplog.set_level(logging.WARNING)
    ids, _ = await pages(crm, 100, segments=["smb"])
    assert ids == org.expect(segments=["smb"])
    selected = set(org.last().fields)
    assert {"Id", "Name", "Segment__c", "Renewal_Date__c", "Go_Live__c"} <= selected
    assert not any(f.startswith("Imported_") for f in selected) and "Tier__c" not in selected
    assert [r.message for r in caplog.records].count(
        "Salesforce: Account has too many custom fields for the scan's query; scans see only the mapped ones. "
        "Map the fields playbooks use with field_map (fields.NAME) in csops.yaml") == 1  # once per scan


# --- the fake's SOQL subset -------------------------------------------------------------------

def test_the_fake_parses_brackets_in_lists_and_date_literals() -> None:
    q = parse_soql("SELECT Id FROM Account WHERE ((D__c >= 2026-03-01 AND D__c <= 2026-03-31) OR (T__c < "
                   "2026-01-02T00:00:00Z) OR X__c = null) AND Segment__c NOT IN ('a', 'b\\'c') AND (Name != 'n') "
                   "AND Id > '001Hx0000000001AAA' ORDER BY Id LIMIT 7")
    assert q.where == (
        AnyOf(((("D__c", ">=", date(2026, 3, 1)), ("D__c", "<=", date(2026, 3, 31))),
               (("T__c", "<", datetime.fromisoformat("2026-01-02T00:00:00+00:00")),), (("X__c", "=", None),))),
        ("Segment__c", "NOT IN", ("a", "b'c")), ("Name", "!=", "n"), ("Id", ">", "001Hx0000000001AAA"))
    assert (q.order, q.limit) == (("Id", False), 7)
    for bad in ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
                "SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b' AND Name = 'c')",
                "SELECT Id FROM Account WHERE Name LIKE 'a%'", "SELECT Id FROM Account WHERE Name IN ()",
                "SELECT Id FROM Account WHERE (Name = 'a'", "SELECT Id FROM Account WHERE D__c > 2026-02-30",
                "SELECT Id FROM Account WHERE D__c > 2026-02-03T10:00:00.000Z",
                "SELECT Id FROM Account WHERE IN ('a')"):
        with pytest.raises(SoqlError):
            parse_soql(bad)


@pytest.mark.parametrize(("soql", "status", "code"), [
    ("SELECT Id FROM Account WHERE Name >= 2026-01-01", 400, "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Account WHERE Renewal_Date__c >= '2026-01-01'", 400, "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Account WHERE Last_QBR__c >= 2026-01-01", 400, "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Account WHERE Id > 'nope'", 400, "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Account WHERE Strategic__c > TRUE", 400, "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Account WHERE Nope__c IN ('a')", 400, "INVALID_FIELD"),
    ("SELECT Id, Name, name FROM Account", 400, "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND Name = 'c'", 400, "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Name IN (" + ", ".join(f"'{i:05d}'" for i in range(2_000)) + ")", 414, ""),
])
async def test_the_fake_answers_as_salesforce_to_queries_it_refuses(org: Org, soql: str, status: int,
                                                                     code: str) -> None:
    async with httpx.AsyncClient(base_url=org.fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        res = await client.get("/services/data/v61.0/query", params={"q": soql})
    assert res.status_code == status
    if code:
        assert res.json()[0]["errorCode"] == code
