"""SalesforceCRM against the loopback Salesforce (tests/fakes/salesforce.py): the field mapping both
ways, SOQL paging and escaping, upsert-by-key task creation, error mapping, check() and secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pytest

from connectors.base import CRM, Account, NewTask, PermanentError, RetryableError
from connectors.salesforce import SalesforceCRM
from connectors.salesforce_map import key_hash, soql_quote
from tests.fakes.http import Scripted
from tests.fakes.salesforce import FakeSalesforce, Query, SoqlError, parse_soql

CLIENT_ID = "3MVG9-test-consumer-key"
SECRET = "consumer-secret-5f1e9a"
TOKEN = "00DHx0000001!static-token-7c3b"


@dataclass
class Org:
    fake: FakeSalesforce
    faults: Scripted
    ids: dict[str, str]

    def crm(self, **kw: Any) -> SalesforceCRM:
        return connect(self.fake, **kw)

    def patches(self) -> int:
        return sum(m == "PATCH" for m, _ in self.fake.requests)


def connect(fake: FakeSalesforce, **kw: Any) -> SalesforceCRM:
    """The connector on the stand-in: client-credentials auth (``auth=`` to change it), quick retries."""
    auth = kw.pop("auth", {"client_id": CLIENT_ID, "client_secret": SECRET})
    return SalesforceCRM(fake.url, **{"timeout": 2.0, "max_retries": 2, **auth, **kw})


def seed(fake: FakeSalesforce) -> dict[str, str]:
    ids = {"mgr": fake.add("User", Username="maria@sf", Email="maria@example.com", Name="Maria Manager",
                           TimeZoneSidKey="Europe/Berlin")}
    ids["csm"] = fake.add("User", Username="carl@sf", Email="carl@example.com", Name="Carl CSM", Title="CSM",
                          ManagerId=ids["mgr"], TimeZoneSidKey="America/New_York")
    ids["gone"] = fake.add("User", Username="gone@sf", Email="dup@example.com", Name="Gone Away", IsActive=False)
    ids["dup"] = fake.add("User", Username="dup@sf", Email="dup@example.com", Name="Dup Active")
    ids["obrien"] = fake.add("User", Username="ob@sf", Email="o'brien@example.com", Name="Pat O'Brien")
    ids["acme"] = fake.add("Account", Name="Acme Corp", Segment__c="strategic", Lifecycle_Stage__c="renew",
                           OwnerId=ids["csm"], ARR__c=120000.0, Renewal_Date__c="2026-03-01",
                           Contract_Start__c="2023-03-01", Renewal_Status__c="open", Health_Score__c=72.0,
                           Health_Band__c="Yellow", Tier__c="gold", CSM__c=ids["csm"], Seats__c=40)
    ids["other"] = fake.add("Account", Name="Other Inc", OwnerId=ids["mgr"])
    for i, (first, role) in enumerate([("Zed", "billing"), ("Ann", "champion"), ("Bo", "admin"), ("Cy", "billing"),
                                       ("Di", "")]):
        fake.add("Contact", AccountId=ids["acme"], Email=f"{first.lower()}@acme.test", FirstName=first,
                 LastName=f"L{i}", Role__c=role or None, Primary__c=first == "Ann", Phone="+1 555 0100")
    fake.add("Contact", AccountId=ids["other"], Email="x@other.test", LastName="X")
    return ids


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    faults = Scripted(retry_after=0)
    async with FakeSalesforce(faults, client_id=CLIENT_ID, client_secret=SECRET, access_token=TOKEN,
                              page_size=2) as fake:
        yield Org(fake, faults, seed(fake))


@pytest.fixture
async def crm(org: Org) -> AsyncIterator[SalesforceCRM]:
    crm = org.crm(field_map={"contact.primary": "Primary__c", "fields.csm_id": "CSM__c"})
    yield crm
    await crm.close()


def task(org: Org, **kw: Any) -> NewTask:
    return NewTask(**{"account_id": org.ids["acme"], "assignee_id": org.ids["csm"], "title": "Call Acme",
                      "notes": "About the renewal", "due": date(2026, 1, 15), "priority": "high", **kw})


async def test_it_is_a_crm(crm: SalesforceCRM) -> None:
    typed: CRM = crm
    assert typed is crm


async def test_account_maps_every_field_and_custom_fields(org: Org, crm: SalesforceCRM) -> None:
    acme = await crm.get_account(org.ids["acme"])
    assert acme == Account(
        id=org.ids["acme"], name="Acme Corp", segment="strategic", lifecycle_stage="renew", owner_id=org.ids["csm"],
        arr=120000.0, renewal_date=date(2026, 3, 1), contract_start=date(2023, 3, 1), renewal_status="open",
        health_score=72, health_band="yellow", previous_health_score=None, fields=acme.fields if acme else {})
    assert acme is not None
    assert acme.fields["Tier__c"] == "gold" and acme.fields["Seats__c"] == 40
    assert acme.fields["csm_id"] == org.ids["csm"]  # the fields.csm_id alias of CSM__c (role:csm finds it)
    other = await crm.get_account(org.ids["other"])
    assert other is not None and (other.segment, other.arr, other.renewal_date, other.health_score) == ("", 0.0,
                                                                                                      None, None)


async def test_unknown_and_malformed_ids_are_none_without_a_bad_request(org: Org, crm: SalesforceCRM) -> None:
    assert await crm.get_account("001Hx0000009999AAA") is None  # well-formed, no such record: 404
    before = len(org.fake.requests)
    assert await crm.get_account("acme") is None
    assert await crm.get_account("001' OR Name != '") is None
    assert await crm.list_contacts("nope") == []
    assert await crm.get_task("x/../../limits") is None
    assert len(org.fake.requests) == before


async def test_contacts_follow_next_records_url_primary_first(org: Org, crm: SalesforceCRM) -> None:
    contacts = await crm.list_contacts(org.ids["acme"])
    assert [c.first_name for c in contacts] == ["Ann", "Zed", "Bo", "Cy", "Di"]
    assert contacts[0].primary and not any(c.primary for c in contacts[1:])
    assert [c.role for c in contacts] == ["champion", "billing", "admin", "billing", ""]
    assert contacts[1].email == "zed@acme.test" and contacts[1].phone == "+1 555 0100"
    assert {c.account_id for c in contacts} == {org.ids["acme"]}
    # 5 rows at 2 a page: the query, then two nextRecordsUrl pages.
    paths = [p for _, p in org.fake.requests if "/query" in p]
    assert len(paths) == 3 and paths[1].startswith("/services/data/v61.0/query/01g")
    assert parse_soql(org.fake.queries[-1]).where == (("AccountId", "=", org.ids["acme"]),)
    org.faults.script = [None, "drop_after", "5xx"]  # the second page is lost, then fails: asked for again
    assert await crm.list_contacts(org.ids["acme"]) == contacts


async def test_users_by_id_and_by_email(org: Org, crm: SalesforceCRM) -> None:
    carl = await crm.get_user(org.ids["csm"])
    assert carl is not None and (carl.email, carl.name, carl.title, carl.manager_id, carl.timezone) == (
        "carl@example.com", "Carl CSM", "CSM", org.ids["mgr"], "America/New_York")
    by_email = await crm.get_user("  CARL@Example.com ")
    assert by_email == carl
    dup = await crm.get_user("dup@example.com")
    assert dup is not None and dup.id == org.ids["dup"]  # the active one of two with that email
    gone = await crm.get_user(org.ids["gone"])
    assert gone is not None and gone.out_of_office and gone.backup_id is None  # inactive: work falls back
    assert await crm.get_user("nobody@example.com") is None
    assert await crm.get_user("005Hx0000009999AAA") is None


@pytest.mark.parametrize("hostile", [
    "x' OR Email != 'y", "x\\' OR Email != \\'y", "a\\", "\\", "'", "''", '"; DELETE', "tab\there@x",
    "line\nbreak@x", "nul\x00@x", "bell\x07\b\f\r@x", "é@ü.example", "x' LIMIT 1 --",
])
async def test_soql_values_are_escaped(org: Org, crm: SalesforceCRM, hostile: str) -> None:
    value = f"{hostile}@example.com" if "@" not in hostile else hostile
    assert await crm.get_user(value) is None
    query = parse_soql(org.fake.queries[-1])  # the value reached Salesforce as one literal, intact
    assert query.where == (("Email", "=", value),) and query.limit == 1


def test_the_fake_parses_soql_rather_than_matching_text() -> None:
    assert parse_soql("select Id, Name from Account where Name = 'Bob\\'s \\\\ \\u00e9' AND IsActive = TRUE "
                      "and Seats__c != 3 ORDER BY Name DESC LIMIT 5") == Query(
        ("Id", "Name"), "Account", (("Name", "=", "Bob's \\ é"), ("IsActive", "=", True), ("Seats__c", "!=", 3.0)),
        ("Name", True), 5)
    for bad in ("SELECT Id FROM User WHERE Email = 'x", "SELECT Id FROM User WHERE Email = 'a\\qb'",
                "SELECT Id FROM User WHERE Email = 'x' OR Email != 'y'", "SELECT FROM User", "SELECT Id FROM User;"):
        with pytest.raises(SoqlError):
            parse_soql(bad)


async def test_a_quote_in_a_real_email_still_finds_the_user(org: Org, crm: SalesforceCRM) -> None:
    found = await crm.get_user("o'brien@example.com")
    assert found is not None and found.id == org.ids["obrien"]
    assert "'o\\'brien@example.com'" in org.fake.queries[-1]
    assert soql_quote("a\\b'c") == "'a\\\\b\\'c'"


async def test_create_task_upserts_by_the_key_hash(org: Org, crm: SalesforceCRM) -> None:
    key = "pb:renewal:acme:once/kickoff"
    made = await crm.create_task(task(org), key)
    assert (made.status, made.priority, made.due, made.assignee_id) == ("open", "high", date(2026, 1, 15),
                                                                        org.ids["csm"])
    [row] = org.fake.tasks()
    assert row["Id"] == made.id and made.id.startswith("00T") and len(made.id) == 18
    assert {k: row[k] for k in ("Subject", "Description", "Status", "Priority", "ActivityDate", "OwnerId", "WhatId",
                                "Csops_Key__c", "IsClosed")} == {
        "Subject": "Call Acme", "Description": "About the renewal", "Status": "Not Started", "Priority": "High",
        "ActivityDate": "2026-01-15", "OwnerId": org.ids["csm"], "WhatId": org.ids["acme"],
        "Csops_Key__c": key_hash(key), "IsClosed": False}
    assert len(key_hash(key)) == 32 and key not in str(org.fake.requests)

    again = await crm.create_task(task(org), key)  # a retried activity: the same task, none added
    assert again == made and org.fake.tasks_created == 1 and org.fake.upserts_updated == 1
    other = await crm.create_task(task(org, title="Other"), key + "-2")
    assert other.id != made.id and org.fake.tasks_created == 2


async def test_a_lost_answer_does_not_make_a_second_task(org: Org, crm: SalesforceCRM) -> None:
    org.faults.script = [None, "drop_after"]  # the token; the upsert is processed, then the connection is cut
    made = await crm.create_task(task(org), "k/lost")
    assert org.fake.tasks_created == 1 and org.fake.upserts_updated == 1 and org.patches() == 2
    assert [t["Id"] for t in org.fake.tasks()] == [made.id]

    # Without retries in the connector the activity retries instead: the same answer.
    once = org.crm(auth={"access_token": TOKEN}, max_retries=0)
    try:
        org.faults.script = ["drop_after"]
        with pytest.raises(RetryableError, match="closed the connection"):
            await once.create_task(task(org, title="Again"), "k/lost-2")
        assert (await once.create_task(task(org, title="Again"), "k/lost-2")).title == "Again"
    finally:
        await once.close()
    assert org.fake.tasks_created == 2


async def test_concurrent_creates_with_one_key_make_one_task(org: Org, crm: SalesforceCRM) -> None:
    made = await asyncio.gather(*(crm.create_task(task(org), "k/race") for _ in range(8)))
    assert len({t.id for t in made}) == 1 and org.fake.tasks_created == 1 and org.fake.upserts_updated == 7


async def test_old_api_versions_answer_204_and_the_id_is_read_back(org: Org) -> None:
    crm = org.crm(api_version="v45.0")
    try:
        first = await crm.create_task(task(org), "k/old")
        again = await crm.create_task(task(org), "k/old")  # 204 without a body: read by external ID
    finally:
        await crm.close()
    assert again.id == first.id and org.fake.tasks_created == 1
    assert ("GET", f"/services/data/v45.0/sobjects/Task/Csops_Key__c/{key_hash('k/old')}") in org.fake.requests


async def test_tasks_read_update_and_complete(org: Org, crm: SalesforceCRM) -> None:
    made = await crm.create_task(task(org, due=None, priority="normal"), "k/t")
    got = await crm.get_task(made.id)
    assert got == replace(made, title="Call Acme")
    moved = await crm.update_task(made.id, assignee_id=org.ids["mgr"], priority="low")
    assert (moved.assignee_id, moved.priority, moved.status) == (org.ids["mgr"], "low", "open")
    assert (await crm.update_task(made.id, status="completed")).status == "completed"
    assert org.fake.rows["Task"][made.id]["Status"] == "Completed"
    assert (await crm.update_task(made.id, status="open")).status == "open"
    assert (await crm.update_task(made.id, status="closed")).status == "completed"
    org.fake.rows["Task"][made.id]["Status"] = "In Progress"  # a status csops did not set: still open
    assert (await crm.get_task(made.id)) == replace(moved, status="open")
    patches = org.patches()
    with pytest.raises(PermanentError, match="priority must be one of low, normal, high"):
        await crm.update_task(made.id, priority="urgent")
    with pytest.raises(PermanentError, match="status must be one of"):
        await crm.update_task(made.id, status="done")
    assert org.patches() == patches  # refused before calling Salesforce
    with pytest.raises(PermanentError, match="NOT_FOUND while updating task 00THx0000009999AAA"):
        await crm.update_task("00THx0000009999AAA", status="completed")
    assert await crm.get_task("00THx0000009999AAA") is None


async def test_notes_are_completed_tasks_logged_once(org: Org, crm: SalesforceCRM) -> None:
    text = "QBR went well\nThey want SSO next quarter."
    note = await crm.add_note(org.ids["acme"], text, "pb:x:acme:once/log")
    assert await crm.add_note(org.ids["acme"], text, "pb:x:acme:once/log") == note  # update path: no TaskSubtype
    row = org.fake.rows["Task"][note]
    assert (row["Subject"], row["Description"], row["Status"], row["WhatId"]) == (
        "Note: QBR went well", text, "Completed", org.ids["acme"])
    assert org.fake.tasks_created == 1
    with pytest.raises(PermanentError, match="a note needs text"):
        await crm.add_note(org.ids["acme"], "  ", "k/empty")


async def test_update_account_converts_values(org: Org, crm: SalesforceCRM) -> None:
    acme = org.ids["acme"]
    updated = await crm.update_account(acme, {
        "arr": "150000.50", "renewal_date": "2026-06-30", "contract_start": "", "health_score": "85",
        "health_band": "green", "segment": "smb", "owner": "maria@example.com", "fields.Seats__c": "42",
        "fields.Strategic__c": "yes", "fields.Tier__c": 3, "fields.Last_QBR__c": "2025-01-02T10:00:00+00:00",
        "fields.csm_id": org.ids["mgr"]})
    assert (updated.arr, updated.renewal_date, updated.contract_start, updated.health_score, updated.health_band,
            updated.segment, updated.owner_id) == (150000.5, date(2026, 6, 30), None, 85, "green", "smb",
                                                   org.ids["mgr"])
    row = org.fake.rows["Account"][acme]
    assert (row["Seats__c"], row["Strategic__c"], row["Tier__c"], row["Last_QBR__c"], row["CSM__c"]) == (
        42, True, "3", "2025-01-02T10:00:00+00:00", org.ids["mgr"])
    assert org.patches() == 1  # one PATCH: all or nothing

    # A custom field created after the connector described Account is found by describing again.
    org.fake.schema["Account"]["Churn_Risk__c"] = replace(org.fake.schema["Account"]["Health_Score__c"])
    assert (await crm.update_account(acme, {"fields.Churn_Risk__c": "0.25"})).fields["Churn_Risk__c"] == 0.25
    describes = [p for _, p in org.fake.requests if p.endswith("/Account/describe")]
    assert len(describes) == 2


@pytest.mark.parametrize(("changes", "message"), [
    ({"arr": "lots"}, "arr: 'lots' is not a number"),
    ({"health_score": "101"}, "health_score: '101' is not a whole number 0-100"),
    ({"renewal_date": "next week"}, "renewal_date: 'next week' is not an ISO date"),
    ({"health_band": "blue"}, "health_band must be one of green, yellow, red"),
    ({"name": " "}, "name: ' ' is not valid non-empty text"),
    ({"fields.Seats__c": "4.5"}, "fields.Seats__c: '4.5' is not a whole number"),
    ({"fields.Strategic__c": "maybe"}, "is not true or false"),
    ({"fields.Nope__c": "x"}, "Salesforce accounts have no field Nope__c; create it"),
    ({"fields.Id": "x"}, "cannot write Account.Id; give it Edit access"),
    ({"owner": "nobody@example.com"}, "owner 'nobody@example.com' is not a Salesforce user"),
    ({"owner": ""}, "must have an owner"),
    ({"colour": "red"}, '"colour" is not a field of the account'),
    ({"previous_health_score": 3}, "not mapped to a Salesforce field; set field_map.previous_health_score"),
])
async def test_update_account_refuses_bad_values_before_writing(org: Org, crm: SalesforceCRM,
                                                                changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError, match=message.replace("(", r"\(").replace(".", r"\.")):
        await crm.update_account(org.ids["acme"], {"segment": "smb", **changes})
    assert org.patches() == 0


async def test_salesforce_errors_name_the_field_and_the_fix(org: Org, crm: SalesforceCRM) -> None:
    org.fake.rules.append(lambda obj, rec: "Renewal date must be after the contract start"
                          if obj == "Account" and rec.get("Renewal_Date__c", "") < "2023" else None)
    with pytest.raises(PermanentError, match=r"FIELD_CUSTOM_VALIDATION_EXCEPTION while updating account .*"
                       r"a validation rule refused the change \(Renewal date must be after the contract start\)"):
        await crm.update_account(org.ids["acme"], {"renewal_date": "2020-01-01"})
    with pytest.raises(PermanentError, match=r"NOT_FOUND while updating account 001Hx0000009999AAA: the record "
                       "does not exist, or the integration user cannot see it"):
        await crm.update_account("001Hx0000009999AAA", {"segment": "smb"})

    missing = org.crm(field_map={"contact.role": "Rol__c"})
    try:
        with pytest.raises(PermanentError, match=r"INVALID_FIELD while listing the contacts .* Salesforce has no "
                           r"field Rol__c on Contact, .* create the custom field"):
            await missing.list_contacts(org.ids["acme"])
    finally:
        await missing.close()

    del org.fake.schema["Task"]["Csops_Key__c"]
    with pytest.raises(PermanentError, match=r"NOT_FOUND while creating the task: Task has no External ID field "
                       r"Csops_Key__c.*Text\(32\), Unique, External ID"):
        await crm.create_task(task(org), "k/1")
    org.fake.schema["Task"]["Csops_Key__c"] = replace(org.fake.schema["Task"]["Subject"], type="string",
                                                     external_id=True, unique=True)
    with pytest.raises(PermanentError, match=r"INACTIVE_OWNER_OR_USER .*inactive Salesforce user"):
        await crm.create_task(task(org, assignee_id=org.ids["gone"]), "k/2")
    with pytest.raises(PermanentError, match="assignee \\(a Salesforce user\\) 'carl' is not a Salesforce id"):
        await crm.create_task(task(org, assignee_id="carl"), "k/3")


@pytest.mark.parametrize(("message", "wait"), [("TotalRequests Limit exceeded.", 1800.0),
                                               ("ConcurrentPerOrgLongTxn Limit exceeded.", 60.0)])
async def test_the_api_request_limit_waits_long(org: Org, crm: SalesforceCRM, message: str, wait: float) -> None:
    org.fake.request_limit_exceeded = message
    before = len(org.fake.requests)
    with pytest.raises(RetryableError) as caught:
        await crm.get_account(org.ids["acme"])
    assert caught.value.retry_after == wait
    assert "the org's API request limit is used up" in str(caught.value) and message in str(caught.value)
    assert len(org.fake.requests) - before <= 2  # the token, then one call: not hammered again here


async def test_an_expired_token_is_renewed_once_for_everyone(org: Org, crm: SalesforceCRM) -> None:
    assert await crm.get_account(org.ids["acme"]) is not None
    assert org.fake.tokens_issued == 1
    org.fake.expire_tokens()
    found = await asyncio.gather(*(crm.get_account(org.ids["acme"]) for _ in range(10)))
    assert all(a is not None for a in found) and org.fake.tokens_issued == 2


async def test_a_token_that_keeps_failing_is_refreshed_only_once(org: Org, crm: SalesforceCRM) -> None:
    class NeverValid(set[str]):
        def __contains__(self, item: object) -> bool:
            return False

    org.fake.tokens = NeverValid()
    with pytest.raises(PermanentError, match=r"INVALID_SESSION_ID while reading account .*: the access token is "
                       r"invalid or expired; check the connected app"):
        await crm.get_account(org.ids["acme"])
    assert org.fake.tokens_issued == 2


async def test_a_given_token_cannot_be_renewed(org: Org) -> None:
    crm = org.crm(auth={"access_token": TOKEN})
    try:
        org.fake.expire_tokens()
        with pytest.raises(PermanentError, match="the access token is invalid or expired; put a new token in "
                           "SALESFORCE_ACCESS_TOKEN"):
            await crm.get_user(org.ids["csm"])
    finally:
        await crm.close()
    assert org.fake.tokens_issued == 0


async def test_refused_client_credentials(org: Org) -> None:
    crm = org.crm(auth={"client_id": CLIENT_ID, "client_secret": "wrong-secret-abc"})
    try:
        with pytest.raises(PermanentError, match="invalid_client while getting an access token: invalid client "
                           "credentials; check client_id and client_secret") as caught:
            await crm.get_account(org.ids["acme"])
    finally:
        await crm.close()
    assert "wrong-secret-abc" not in f"{caught.value} {caught.value.detail}"


async def test_5xx_and_429_are_retried_here_then_left_to_the_activity(org: Org, crm: SalesforceCRM) -> None:
    org.faults.script = [None, "5xx", "drop_before"]  # the token, then two failures of one call
    assert await crm.get_account(org.ids["acme"]) is not None
    org.faults.script = ["429", "5xx"]
    assert await crm.get_account(org.ids["acme"]) is not None
    assert len(org.fake.requests) == 7
    org.faults.script = ["5xx"] * 3
    with pytest.raises(RetryableError, match=r"Salesforce had an internal error \(HTTP 5\d\d\) while reading "
                       r"account .* \(tried 3 times\); csops tries again later"):
        await crm.get_account(org.ids["acme"])


async def test_a_long_retry_after_is_not_waited_for_here(org: Org, crm: SalesforceCRM) -> None:
    org.faults.retry_after = 30
    org.faults.script = [None, "429"]
    with pytest.raises(RetryableError, match="rate limiting") as caught:
        await crm.get_account(org.ids["acme"])
    assert caught.value.retry_after == 30.0 and len(org.fake.requests) == 2


async def test_timeouts_are_retried(org: Org) -> None:
    crm = org.crm(timeout=0.3, max_retries=1)
    try:
        org.fake.stalls = 1
        assert await crm.get_account(org.ids["acme"]) is not None
        org.fake.stalls = 2
        with pytest.raises(RetryableError, match=r"Salesforce did not answer in time while reading account .* "
                           r"\(tried 2 times\)"):
            await crm.get_account(org.ids["acme"])
    finally:
        await crm.close()


async def test_check_passes_on_a_complete_org(org: Org, crm: SalesforceCRM) -> None:
    assert await crm.check() == []
    assert [p for _, p in org.fake.requests if p.endswith("/describe")] == [
        f"/services/data/v61.0/sobjects/{o}/describe" for o in ("Account", "Contact", "User", "Task")]


async def test_check_names_missing_fields_and_permissions(org: Org, crm: SalesforceCRM) -> None:
    del org.fake.schema["Account"]["Health_Band__c"]
    org.fake.schema["Task"]["Csops_Key__c"] = replace(org.fake.schema["Task"]["Csops_Key__c"], unique=False)
    org.fake.schema["Account"]["Segment__c"] = replace(org.fake.schema["Account"]["Segment__c"], updateable=False)
    org.fake.object_access["Task"] = {"createable": False}
    assert await crm.check() == [
        "the integration user cannot write Account.Segment__c: give it Edit access in the field's field-level "
        "security",
        "Account has no field Health_Band__c (csops uses it for health_band), or the integration user cannot see "
        "it: create the custom field in Setup > Object Manager > Account, or give the user field-level access to "
        "it, or change field_map.health_band in csops.yaml",
        "the integration user cannot create and edit Task records: give it Create and Edit on Task",
        "Task.Csops_Key__c must be marked External ID and Unique: csops upserts tasks by it, so that a retried step "
        "cannot create a second task",
    ]


async def test_check_reports_bad_credentials_once(org: Org) -> None:
    stale = org.crm(auth={"access_token": "00DHx0000001!expired"})
    none = org.crm(auth={})
    try:
        assert await stale.check() == [
            "Salesforce said INVALID_SESSION_ID while describing Account: the access token is invalid or expired; "
            "put a new token in SALESFORCE_ACCESS_TOKEN, or configure client_id and client_secret so that csops "
            "renews tokens itself"]
        assert await none.check() == [
            "no Salesforce credentials: set client_id and client_secret (client credentials flow) or access_token "
            "in the crm section of csops.yaml"]
        with pytest.raises(PermanentError, match="no Salesforce credentials"):
            await none.get_account(org.ids["acme"])
    finally:
        await stale.close()
        await none.close()


async def test_secrets_stay_out_of_reprs_errors_and_logs(org: Org, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with_secret = org.crm()
    with_token = org.crm(auth={"access_token": TOKEN})
    seen: list[str] = [repr(with_secret), repr(with_token)]
    try:
        assert await with_secret.get_account(org.ids["acme"]) is not None
        issued = next(iter(org.fake.tokens - {TOKEN}))
        org.fake.request_limit_exceeded = "TotalRequests Limit exceeded."
        for call in (with_secret, with_token):
            with pytest.raises(RetryableError) as caught:
                await call.get_account(org.ids["acme"])
            seen += [str(caught.value), caught.value.detail, repr(caught.value.__cause__)]
        org.fake.request_limit_exceeded = ""
        org.fake.expire_tokens()
        with pytest.raises(PermanentError) as denied:
            await with_token.get_account(org.ids["acme"])
        seen += [str(denied.value), denied.value.detail]
    finally:
        await with_secret.close()
        await with_token.close()
    seen.append(caplog.text)
    assert "client credentials" in seen[0] and "access token" in seen[1]
    for text in seen:
        assert SECRET not in text and TOKEN not in text and issued not in text


@pytest.mark.parametrize(("kw", "message"), [
    ({"field_map": {"segmnt": "Segment__c"}}, "field_map has no key 'segmnt'"),
    ({"field_map": {"segment": "Segment__c FROM User --"}}, "is not a Salesforce field API name"),
    ({"field_map": {"task.key": ""}}, "field_map.task.key cannot be empty"),
    ({"field_map": {"fields.tier": ""}}, "field_map.fields.tier needs a Salesforce field name"),
    ({"api_version": "latest"}, "api_version 'latest' is not like v61.0"),
    ({"instance_url": "acme.my.salesforce.com"}, "is not an https:// URL"),
])
def test_bad_configuration_is_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SalesforceCRM(**{"instance_url": "https://acme.my.salesforce.com", "access_token": TOKEN, **kw})


async def test_field_map_moves_fields(org: Org) -> None:
    org.fake.rows["Account"][org.ids["acme"]]["AnnualRevenue"] = 99.0
    crm = org.crm(field_map={"arr": "AnnualRevenue", "segment": "", "owner": "OwnerId"})
    try:
        acme = await crm.get_account(org.ids["acme"])
        assert acme is not None and (acme.arr, acme.segment) == (99.0, "")
        await crm.update_account(org.ids["acme"], {"arr": 7})
    finally:
        await crm.close()
    assert org.fake.rows["Account"][org.ids["acme"]]["AnnualRevenue"] == 7.0


async def test_a_cancelled_task_gets_the_configured_closed_status(org: Org) -> None:
    org.fake.add_task_status("Cancelled", closed=True)  # what an admin adds for it
    crm = org.crm(cancelled_task_status="Cancelled")
    try:
        assert await crm.check() == []
        made = await crm.create_task(NewTask(account_id=org.ids["acme"], assignee_id=org.ids["csm"], title="Call",
                                             notes="Agenda"), "wf-c/t")
        cancelled = await crm.update_task(made.id, status="cancelled", reason="run cancelled: wrong account")
    finally:
        await crm.close()
    assert (cancelled.status, cancelled.reason) == ("cancelled", "run cancelled: wrong account")
    [task] = [t for t in org.fake.tasks() if t["Id"] == made.id]
    assert (task["Status"], task["IsClosed"]) == ("Cancelled", True)
    assert task["Description"] == "Agenda\n\nCancelled by csops, not done: run cancelled: wrong account"


async def test_check_names_a_cancelled_status_the_org_lacks(org: Org) -> None:
    crm = org.crm(cancelled_task_status="Cancelled")
    try:
        assert await crm.check() == [
            "the Task Status picklist has no value 'Cancelled' (crm.cancelled_task_status, given to tasks closed "
            "because their run ended): add it in Setup > Object Manager > Task > Fields > Status, marked Closed, or "
            "set cancelled_task_status to one of Not Started, In Progress, Completed, Waiting on someone else, "
            "Deferred"]
    finally:
        await crm.close()
