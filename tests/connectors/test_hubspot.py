"""HubSpotCRM against the loopback HubSpot: the property mapping both ways, contacts over pages,
owners, tasks and notes made once per key (also when an answer is lost), errors in plain words,
the rate-limit back-off, check(), and that the token never shows."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import pytest

from connectors.base import Account, ConnectorError, Contact, NewTask, PermanentError, RetryableError, User
from connectors.hubspot import REQUIRED_SCOPES, HubSpotCRM, TokenRefused
from tests.fakes.hubspot import SCOPES, FakeHubSpot, HubSpotFaults

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
KEY = "pb:renewal:1001:2025/kickoff"


@dataclass
class World:
    fake: FakeHubSpot
    crm: HubSpotCRM
    acme: str
    csm: str
    mgr: str


def seed(fake: FakeHubSpot) -> tuple[str, str, str]:
    fake.properties["companies"] |= {"csops_csm": {"type": "owner"}, "csops_plan": {"type": "string"},
                                     "csops_logins": {"type": "number"}}
    mgr = fake.add_owner("maria@example.com", "Maria", "Manager")
    csm = fake.add_owner("carl@example.com", "Carl", "CSM")
    acme = fake.add_company(name="Acme Corp", csops_segment="strategic", lifecyclestage="customer",
                            hubspot_owner_id=csm, csops_arr="120000.5", csops_renewal_date="2025-09-30",
                            csops_contract_start="2024-10-01", csops_renewal_status="open", csops_health_score="82",
                            csops_health_band="green", csops_csm=csm, csops_logins="310")
    return acme, csm, mgr


def make_crm(fake: FakeHubSpot, mgr: str = "", **kw: object) -> HubSpotCRM:
    property_map = {"fields.csm_id": "csops_csm", "usage.logins": "csops_logins"}
    if mgr:
        property_map["manager.carl@example.com"] = mgr
    return HubSpotCRM(TOKEN, base_url=fake.url, property_map=property_map, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def w() -> AsyncIterator[World]:
    async with FakeHubSpot(TOKEN) as fake:
        acme, csm, mgr = seed(fake)
        crm = make_crm(fake, mgr, max_retries=3)
        crm.index_delay = 0.2
        try:
            yield World(fake, crm, acme, csm, mgr)
        finally:
            await crm.close()


def script(fake: FakeHubSpot, *kinds: str | None) -> None:
    assert isinstance(fake.faults, HubSpotFaults)
    fake.faults.script = list(kinds)


def task(w: World, **kw: object) -> NewTask:
    fields: dict[str, object] = {"account_id": w.acme, "assignee_id": w.csm, "title": "Kick off the renewal",
                                 "notes": "Call Pat", "due": date(2025, 6, 2), "priority": "high"} | kw
    return NewTask(**fields)  # type: ignore[arg-type]


# --- accounts ------------------------------------------------------------------------------------

async def test_account_read_maps_properties_custom_fields_and_dates(w: World) -> None:
    account = await w.crm.get_account(w.acme)
    assert account == Account(id=w.acme, name="Acme Corp", segment="strategic", lifecycle_stage="customer",
                               owner_id=w.csm, arr=120000.5, renewal_date=date(2025, 9, 30),
                               contract_start=date(2024, 10, 1), renewal_status="open", health_score=82,
                               health_band="green", previous_health_score=None, usage={"logins": "310"},
                               fields={"csm_id": w.csm})
    assert await w.crm.get_account("424242") is None
    assert await w.crm.get_account("acme") is None  # not a HubSpot id: no request at all
    companies = "/crm/v3/objects/companies"
    assert [p for _, p in w.fake.requests] == [f"{companies}/{w.acme}", f"{companies}/424242"]


async def test_update_account_converts_types_and_reads_back(w: World) -> None:
    account = await w.crm.update_account(w.acme, {
        "arr": "250000", "renewal_date": "2026-01-15", "contract_start": "", "health_score": "55.0",
        "owner": "maria@example.com", "segment": "commercial", "fields.csops_plan": "gold", "fields.csm_id": w.mgr})
    stored = w.fake.records["companies"][w.acme].properties
    # the date went out as midnight-UTC epoch millis (the fake refuses any other time) and reads back as a day
    assert (stored["csops_arr"], stored["csops_renewal_date"], stored["csops_contract_start"]) == (
        "250000", "2026-01-15", "")
    assert (stored["csops_health_score"], stored["hubspot_owner_id"], stored["csops_plan"]) == ("55", w.mgr, "gold")
    assert (account.arr, account.renewal_date, account.contract_start, account.health_score) == (
        250000.0, date(2026, 1, 15), None, 55)
    assert (account.owner_id, account.segment, account.fields) == (
        w.mgr, "commercial", {"csm_id": w.mgr, "csops_plan": "gold"})


@pytest.mark.parametrize(("changes", "says"), [
    ({"arr": "lots"}, "arr: 'lots' is not a valid number"),
    ({"health_score": "101"}, "whole number 0-100"),
    ({"health_band": "purple"}, "health_band must be one of"),
    ({"renewal_date": "31/12/2025"}, "ISO date"),
    ({"bogus": "1"}, '"bogus" is not a field of the account'),
    ({"owner": "nobody@example.com"}, "'nobody@example.com' is not a HubSpot owner"),
    ({"fields.plan": {"a": 1}}, "cannot be stored"),
])
async def test_update_account_refuses_bad_values_before_writing(w: World, changes: dict[str, object],
                                                                 says: str) -> None:
    with pytest.raises(PermanentError, match=says):
        await w.crm.update_account(w.acme, changes)
    assert [m for m, _ in w.fake.requests if m == "PATCH"] == []


async def test_hubspot_refusals_name_the_property(w: World) -> None:
    crm = HubSpotCRM(TOKEN, base_url=w.fake.url, property_map={"segment": "csops_tier"})
    try:
        with pytest.raises(PermanentError) as missing:
            await crm.update_account(w.acme, {"segment": "smb"})
        with pytest.raises(PermanentError) as option:
            await crm.update_account(w.acme, {"lifecycle_stage": "renew"})
    finally:
        await crm.close()
    assert 'Property \\"csops_tier\\" does not exist' in str(missing.value) and "property_map" in str(missing.value)
    assert "renew was not one of the allowed options" in str(option.value) and "VALIDATION_ERROR" in str(option.value)
    assert "correlationId" in missing.value.detail


# --- contacts and owners ---------------------------------------------------------------------------

async def test_contacts_come_through_associations_over_pages_primary_first(w: World) -> None:
    ids = [w.fake.add_contact(w.acme, email=f"p{i}@acme.example", firstname=f"P{i}", lastname="Lee",
                              csops_role="billing" if i % 2 else "champion") for i in range(620)]
    w.fake.records["contacts"][ids[377]].properties |= {"csops_primary_contact": "true", "jobtitle": "CFO",
                                                         "phone": "+1 555 0100"}
    contacts = await w.crm.list_contacts(w.acme)
    assert len(contacts) == 620 and [c.id for c in contacts[1:]] == ids[:377] + ids[378:]
    assert contacts[0] == Contact(id=ids[377], account_id=w.acme, email="p377@acme.example", first_name="P377",
                                  last_name="Lee", title="CFO", role="billing", phone="+1 555 0100", primary=True)
    paths = [p for _, p in w.fake.requests]
    assert paths.count(f"/crm/v4/objects/companies/{w.acme}/associations/contacts") == 2  # 500 + 120
    assert paths.count("/crm/v3/objects/contacts/batch/read") == 7  # 100 at a time
    assert await w.crm.list_contacts(w.fake.add_company(name="Empty Inc")) == []


async def test_owners_by_id_or_email_with_the_configured_manager(w: World) -> None:
    carl = User(id=w.csm, email="carl@example.com", name="Carl CSM", manager_id=w.mgr)
    assert await w.crm.get_user(w.csm) == carl
    assert await w.crm.get_user("CARL@example.com") == carl
    assert await w.crm.get_user(w.mgr) == User(id=w.mgr, email="maria@example.com", name="Maria Manager")
    assert [await w.crm.get_user(r) for r in ("424242", "nobody@example.com", "u-csm")] == [None, None, None]


# --- tasks and notes ----------------------------------------------------------------------------------

async def test_task_create_read_update_complete(w: World) -> None:
    made = await w.crm.create_task(task(w), KEY)
    [stored] = w.fake.tasks()
    assert stored.company == w.acme and stored.properties == {
        "hs_task_subject": "Kick off the renewal", "hs_task_body": "Call Pat", "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH", "hs_task_type": "TODO", "hs_timestamp": "2025-06-02T12:00:00.000Z",
        "hubspot_owner_id": w.csm, "csops_idempotency_key": KEY}
    assert (made.id, made.status, made.priority, made.due, made.assignee_id) == (
        stored.id, "open", "high", date(2025, 6, 2), w.csm)
    assert await w.crm.get_task(made.id) == made
    moved = await w.crm.update_task(made.id, assignee_id=w.mgr, priority="low")
    assert (moved.assignee_id, moved.priority, moved.status, moved.account_id) == (w.mgr, "low", "open", w.acme)
    done = await w.crm.update_task(made.id, status="closed")
    assert done.status == "completed" and stored.properties["hs_task_status"] == "COMPLETED"
    assert (await w.crm.update_task(made.id, status="open")).status == "open"
    assert await w.crm.get_task("424242") is None
    with pytest.raises(PermanentError, match="status must be one of"):
        await w.crm.update_task(made.id, status="done")
    with pytest.raises(PermanentError, match="task 424242 does not exist"):
        await w.crm.update_task("424242", status="completed")


async def test_a_cancelled_task_is_completed_with_a_line_saying_why(w: World) -> None:
    made = await w.crm.create_task(task(w), KEY)
    first = await w.crm.update_task(made.id, status="cancelled", reason="run exited: event account.churned arrived")
    again = await w.crm.update_task(made.id, status="cancelled", reason="run exited: event account.churned arrived")
    assert (first.status, first.reason) == ("cancelled", "run exited: event account.churned arrived")
    assert again == first and await w.crm.get_task(made.id) == first
    [stored] = w.fake.tasks()
    assert stored.properties["hs_task_status"] == "COMPLETED"  # HubSpot has no cancelled status
    assert stored.properties["hs_task_body"] == (
        "Call Pat\n\nCancelled by csops, not done: run exited: event account.churned arrived")  # added once


async def test_a_repeated_key_returns_the_first_task(w: World) -> None:
    first = await w.crm.create_task(task(w), KEY)
    again = await w.crm.create_task(task(w, title="something else"), KEY)
    assert again.id == first.id and w.fake.created["tasks"] == 1
    assert (await w.crm.create_task(task(w), KEY + "-other")).id != first.id


@pytest.mark.parametrize("fault", ["drop_after", "drop_before", "5xx"])
async def test_a_lost_create_answer_is_retried_later_and_lands_once(w: World, fault: str) -> None:
    script(w.fake, None, fault)  # the search goes through, the create's answer is lost
    with pytest.raises(RetryableError) as lost:
        await w.crm.create_task(task(w), KEY)
    assert lost.value.retry_after == w.crm.index_delay and "idempotency key" in str(lost.value)
    assert w.fake.created["tasks"] == (1 if fault == "drop_after" else 0)
    made = await w.crm.create_task(task(w), KEY)  # the activity's retry
    assert w.fake.created["tasks"] == 1 and [t.id for t in w.fake.tasks()] == [made.id]
    assert [m for m, p in w.fake.requests if p == "/crm/v3/objects/tasks"].count("POST") == (
        1 if fault == "drop_after" else 2)


async def test_search_lag_is_why_the_retry_waits(w: World) -> None:
    """HubSpot's search index lags: a retry at once would not see the task; one after
    ``retry_after`` does. The fake's lag stands in for the real index's."""
    w.fake.search_lag, w.crm.index_delay = 0.4, 0.6
    script(w.fake, None, "drop_after")
    with pytest.raises(RetryableError) as lost:
        await w.crm.create_task(task(w), KEY)
    assert lost.value.retry_after is not None
    await asyncio.sleep(lost.value.retry_after)  # what Temporal's next_retry_delay does
    await w.crm.create_task(task(w), KEY)
    assert w.fake.created["tasks"] == 1
    w.fake.search_lag = 30.0
    script(w.fake, None, "drop_after")
    with pytest.raises(RetryableError):
        await w.crm.create_task(task(w), "impatient")
    await w.crm.create_task(task(w), "impatient")  # retried at once, inside the lag: the hazard
    assert w.fake.created["tasks"] == 3


async def test_a_unique_key_property_closes_the_window(w: World) -> None:
    w.fake.unique_keys, w.fake.search_lag = True, 60.0  # the index never catches up in this test
    script(w.fake, None, "drop_after")
    with pytest.raises(RetryableError):
        await w.crm.create_task(task(w), KEY)
    with pytest.raises(RetryableError, match="exists but cannot find it yet"):
        await w.crm.create_task(task(w), KEY)  # 409 from HubSpot, not a second task
    w.fake.tasks()[0].searchable_at = 0.0  # the index caught up
    made = await w.crm.create_task(task(w), KEY)
    assert made.id == w.fake.tasks()[0].id and w.fake.created["tasks"] == 1


async def test_note_lands_once_on_the_company(w: World) -> None:
    first = await w.crm.add_note(w.acme, "ARR now 250000", KEY)
    script(w.fake, None, "drop_after")
    with pytest.raises(RetryableError):
        await w.crm.add_note(w.acme, "ARR now 250000", KEY + "/2")
    assert await w.crm.add_note(w.acme, "ARR now 250000", KEY) == first
    await w.crm.add_note(w.acme, "ARR now 250000", KEY + "/2")
    notes = w.fake.notes()
    assert w.fake.created["notes"] == 2 and [n.company for n in notes] == [w.acme, w.acme]
    assert notes[0].properties["hs_note_body"] == "ARR now 250000"
    assert notes[0].properties["csops_idempotency_key"] == KEY


async def test_turning_the_remote_dedupe_off_skips_the_search(w: World) -> None:
    crm = HubSpotCRM(TOKEN, base_url=w.fake.url, property_map={"task.idempotency_key": ""})
    try:
        await crm.create_task(task(w), KEY)
    finally:
        await crm.close()
    assert "csops_idempotency_key" not in w.fake.tasks()[0].properties
    assert [p for _, p in w.fake.requests] == ["/crm/v3/objects/tasks"]


# --- errors ----------------------------------------------------------------------------------------------

async def test_401_says_the_token_is_refused(w: World) -> None:
    crm = HubSpotCRM("pat-na1-revoked", base_url=w.fake.url)
    try:
        with pytest.raises(TokenRefused, match=r"invalid, expired or was rotated.*HUBSPOT_TOKEN"):
            await crm.get_account(w.acme)
    finally:
        await crm.close()


async def test_403_names_the_missing_scope(w: World) -> None:
    w.fake.scopes.discard("crm.objects.contacts.write")
    with pytest.raises(PermanentError, match=r"lacks the scope\(s\) crm.objects.contacts.write needed to create a "
                                             r"task on account \d+: add them under Settings > Integrations"):
        await w.crm.create_task(task(w), KEY)


async def test_400_keeps_hubspot_message_and_category(w: World) -> None:
    with pytest.raises(PermanentError, match=r"424242 is not a valid owner id.*VALIDATION_ERROR"):
        await w.crm.create_task(task(w, assignee_id="424242"), KEY)
    with pytest.raises(PermanentError, match="no company 424242"):
        await w.crm.add_note("424242", "x", KEY)


async def test_429_waits_for_retry_after_then_succeeds(w: World) -> None:
    script(w.fake, "429", None)
    began = time.monotonic()
    assert (await w.crm.get_account(w.acme)) is not None
    assert time.monotonic() - began >= 1.0 and len(w.fake.requests) == 2


async def test_429_and_5xx_past_the_retries_are_retryable(w: World) -> None:
    crm = make_crm(w.fake, max_retries=1)
    try:
        script(w.fake, "429", "429")
        with pytest.raises(RetryableError, match="rate limit") as limited:
            await crm.get_user(w.csm)
        script(w.fake, "5xx", "5xx", "5xx", None)
        with pytest.raises(RetryableError, match="HubSpot failed with HTTP 50"):
            await crm.get_user(w.csm)
        assert await crm.get_user(w.csm) is not None  # the fourth request gets through
    finally:
        await crm.close()
    assert limited.value.retry_after == 1.0 and len(w.fake.requests) == 6  # 2 + 2 + 2


async def test_timeouts_are_retried_then_retryable(w: World) -> None:
    crm = make_crm(w.fake, timeout=0.1, max_retries=2)
    w.fake.latency = 0.5
    try:
        with pytest.raises(RetryableError, match="ReadTimeout"):
            await crm.get_account(w.acme)
    finally:
        await crm.close()
    assert len(w.fake.requests) == 3


async def test_remaining_zero_backs_off_until_the_window_ends() -> None:
    async with FakeHubSpot(TOKEN, window_max=3, window_ms=500) as fake:
        _, csm, _ = seed(fake)
        crm, other = make_crm(fake), make_crm(fake)
        try:
            began = time.monotonic()
            for _ in range(7):
                assert await crm.get_user(csm) is not None
            elapsed = time.monotonic() - began
            await asyncio.sleep(0.5)  # a fresh window for the second client's turn
            assert await crm.get_user(csm) is not None  # leaves the window used up for everyone
            assert await crm.get_user(csm) is not None
            assert await crm.get_user(csm) is not None
            assert await other.get_user(csm) is not None  # 429 (no Retry-After): waits out the interval
        finally:
            await crm.close()
            await other.close()
    assert elapsed >= 1.0  # two full windows waited out, 3 + 3 + 1 requests
    assert fake.throttled == 1 and len(fake.requests) == 12


# --- check() and secrets ----------------------------------------------------------------------------------

async def test_check_passes_on_a_good_setup(w: World) -> None:
    assert await w.crm.check() == []


async def test_check_names_missing_scopes_and_properties(w: World) -> None:
    w.fake.scopes -= {"crm.objects.owners.read", "crm.objects.companies.write"}
    del w.fake.properties["notes"]["csops_idempotency_key"]
    problems = await w.crm.check()
    assert problems[0].startswith("the private app lacks the scope(s) crm.objects.companies.write, "
                                  "crm.objects.owners.read (needed to update accounts; read owners (users))")
    assert any("crm.objects.owners.read needed to read owners" in p for p in problems)
    assert any("search notes by their csops_idempotency_key" in p for p in problems)
    assert len(problems) == 3


async def test_check_stops_at_a_refused_token_or_no_connection(w: World) -> None:
    bad = HubSpotCRM("pat-na1-wrong", base_url=w.fake.url, max_retries=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    gone = HubSpotCRM(TOKEN, base_url=f"http://127.0.0.1:{closed_port}", max_retries=0)
    try:
        [refused] = await bad.check()
        [unreachable] = await gone.check()
    finally:
        await bad.close()
        await gone.close()
    assert "refused the access token" in refused and "cannot reach HubSpot at http://127.0.0.1" in unreachable


async def test_the_token_never_shows(w: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectorError] = []
    bad = HubSpotCRM("pat-na1-wrong", base_url=w.fake.url)
    script(w.fake, "5xx", None, None, "drop_after")
    try:
        assert await w.crm.get_account(w.acme) is not None
        for call in (lambda: w.crm.create_task(task(w), KEY), lambda: bad.get_account(w.acme),
                     lambda: w.crm.create_task(task(w, assignee_id="424242"), "x")):
            try:
                await call()
            except ConnectorError as exc:
                errors.append(exc)
        problems = await bad.check()
    finally:
        await bad.close()
    assert len(errors) == 3 and problems
    shown = [caplog.text, repr(w.crm), repr(bad), *problems, *(f"{e} {e.detail}" for e in errors)]
    assert "HubSpotCRM(base_url=" in repr(w.crm) and "<hidden>" in repr(w.crm)
    assert not [s for s in shown if TOKEN in s or "pat-na1-wrong" in s]


def test_configuration_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="HUBSPOT_TOKEN"):
        HubSpotCRM("  ")
    with pytest.raises(ValueError, match="'segmnet' names nothing csops knows"):
        HubSpotCRM(TOKEN, property_map={"segmnet": "x"})
    with pytest.raises(ValueError, match="needs a HubSpot property name"):
        HubSpotCRM(TOKEN, property_map={"name": ""})
    assert set(REQUIRED_SCOPES) == set(SCOPES)  # the fake grants exactly what the docs ask for
