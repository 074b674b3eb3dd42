"""PipedriveCRM against the loopback Pipedrive (tests/fakes/pipedrive.py, API v1): organizations as
accounts with custom-field keys, persons, users, activities as tasks and notes, each made exactly
once per key even when Pipedrive's answer is lost, and its errors in plain words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date

import pytest

from connectors.base import CRM, NewTask, PermanentError
from connectors.pipedrive import PipedriveCRM
from tests.fakes.http import Scripted
from tests.fakes.pipedrive import TOKEN, FakePipedrive

ARR, RENEWAL, SEGMENT, TIER, ROLE, ZONE = "a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40, "f" * 40
FIELDS = {"arr": ARR, "renewal_date": RENEWAL, "segment": SEGMENT, "fields.tier": TIER, "contact.role": ROLE,
          "contact.timezone": ZONE}


@dataclass
class Pd:
    fake: FakePipedrive
    faults: Scripted
    crm: PipedriveCRM


@pytest.fixture
async def pd() -> AsyncIterator[Pd]:
    faults = Scripted()
    async with FakePipedrive(faults, page_size=2) as fake:
        fake.add_user(7, "carl@example.com", "Carl CSM")
        fake.add_user(8, "maria@example.com", "Maria Manager")
        fake.add_org(42, "Acme Corp", 7, **{ARR: 120000, RENEWAL: "2027-05-04", SEGMENT: "strategic", TIER: "gold"})
        fake.add_person(501, 42, "Pat", "Lee", "pat@acme.example", **{ROLE: "champion", ZONE: "America/Chicago"})
        fake.add_person(502, 42, "Bill", "Ray", "bill@acme.example", **{ROLE: "billing"})
        fake.add_person(503, 42, "Ann", "Ho", "ann@acme.example")
        crm = PipedriveCRM(TOKEN, base_url=fake.url, field_map=FIELDS, max_retries=3)
        yield Pd(fake, faults, crm)
        await crm.close()


def task(title: str = "Call Acme") -> NewTask:
    return NewTask(account_id="42", assignee_id="7", title=title, notes="Renewal is near", due=date(2027, 4, 1),
                   priority="high")


async def test_it_is_a_crm_and_reads_organizations_persons_and_users(pd: Pd) -> None:
    crm: CRM = pd.crm
    account = await crm.get_account("42")
    assert account is not None
    assert (account.name, account.owner_id, account.arr, account.renewal_date, account.segment, account.fields) == (
        "Acme Corp", "7", 120000.0, date(2027, 5, 4), "strategic", {"tier": "gold"})
    assert await crm.get_account("999") is None and await crm.get_account("acme") is None
    contacts = await crm.list_contacts("42")  # three persons over two pages of two
    assert [(c.id, c.email, c.role, c.primary, c.timezone) for c in contacts] == [
        ("501", "pat@acme.example", "champion", True, "America/Chicago"),
        ("502", "bill@acme.example", "billing", False, ""), ("503", "ann@acme.example", "", False, "")]
    user = await crm.get_user("carl@example.com")
    assert user is not None and (user.id, user.name) == ("7", "Carl CSM")
    assert await crm.get_user("8") is not None and await crm.get_user("nobody@example.com") is None


async def test_a_task_is_one_activity_per_key(pd: Pd) -> None:
    first = await pd.crm.create_task(task(), "run-1/call")
    again = await pd.crm.create_task(task(), "run-1/call")
    other = await pd.crm.create_task(task("Other"), "run-1/other")
    assert first.id == again.id != other.id
    assert pd.fake.created["activities"] == 2
    stored = pd.fake.activities[int(first.id)]
    assert (stored["type"], stored["org_id"], stored["user_id"], stored["due_date"], stored["done"]) == (
        "task", 42, 7, "2027-04-01", False)
    assert (first.status, first.priority, first.due, first.title) == ("open", "high", date(2027, 4, 1), "Call Acme")


@pytest.mark.parametrize("fault", ["drop_after", "5xx", "drop_before", "429"])
async def test_a_lost_or_refused_create_still_makes_one_activity(pd: Pd, fault: str) -> None:
    # The listing (GET) comes first; the fault hits the create (POST).
    pd.faults.script = [None, fault]
    made = await pd.crm.create_task(task(), "run-2/call")
    assert pd.faults.injected[fault] == 1
    assert pd.fake.created["activities"] == 1
    assert made.id == str(next(iter(pd.fake.activities)))


async def test_a_note_is_one_per_key_even_when_the_answer_is_lost(pd: Pd) -> None:
    pd.faults.script = [None, "drop_after"]
    first = await pd.crm.add_note("42", "Renewal call booked", "run-3/note")
    again = await pd.crm.add_note("42", "Renewal call booked", "run-3/note")
    assert first == again and pd.fake.created["notes"] == 1
    assert pd.fake.notes[int(first)]["content"] == "Renewal call booked\ncsops key: run-3/note"


async def test_completing_cancelling_reassigning_and_reprioritising(pd: Pd) -> None:
    made = await pd.crm.create_task(task(), "run-4/call")
    moved = await pd.crm.update_task(made.id, assignee_id="8", priority="low")
    assert (moved.assignee_id, moved.priority, moved.status) == ("8", "low", "open")
    cancelled = await pd.crm.update_task(made.id, status="cancelled", reason="run exited: churned")
    assert (cancelled.status, cancelled.reason) == ("cancelled", "run exited: churned")
    assert pd.fake.activities[int(made.id)]["done"] is True
    other = await pd.crm.create_task(task("Done one"), "run-4/done")
    assert (await pd.crm.update_task(other.id, status="completed")).status == "completed"
    with pytest.raises(PermanentError, match="does not exist"):
        await pd.crm.update_task("9999", status="completed")


async def test_account_updates_go_to_the_mapped_fields_and_say_what_is_missing(pd: Pd) -> None:
    account = await pd.crm.update_account("42", {"arr": "150,000", "renewal_date": "2028-05-04",
                                                 "owner": "maria@example.com"})
    assert (account.arr, account.renewal_date, account.owner_id) == (150000.0, date(2028, 5, 4), "8")
    with pytest.raises(PermanentError, match="lifecycle_stage has no Pipedrive field: add lifecycle_stage"):
        await pd.crm.update_account("42", {"lifecycle_stage": "renew"})
    with pytest.raises(PermanentError, match="is not a Pipedrive user"):
        await pd.crm.update_account("42", {"owner": "ghost@example.com"})
    with pytest.raises(PermanentError, match="must be a number"):
        await pd.crm.update_account("42", {"arr": "lots"})


async def test_a_wrong_token_is_named_and_never_shown(pd: Pd) -> None:
    bad = PipedriveCRM("wrong-token", base_url=pd.fake.url, max_retries=0)
    problems = await bad.check()
    assert problems == ["Pipedrive refused the API token (401): copy the current one from Settings > Personal "
                        "preferences > API into PIPEDRIVE_API_TOKEN"]
    assert "wrong-token" not in repr(bad) and await pd.crm.check() == []
    await bad.close()


async def test_chosen_in_csops_yaml_and_built_by_the_wiring(pd: Pd, tmp_path: object) -> None:
    from engine.config.config import ConfigError, PipedriveConfig, parse_config
    from engine.config.settings import Settings
    from engine.wiring import build_crm

    text = (f"crm:\n  kind: pipedrive\n  api_token: ${{PIPEDRIVE_API_TOKEN}}\n  base_url: {pd.fake.url}\n"
            f"  field_map: {{arr: {ARR}}}\n")
    cfg = parse_config(text, "csops.yaml", {"PIPEDRIVE_API_TOKEN": TOKEN})
    assert isinstance(cfg.crm, PipedriveConfig) and cfg.crm.field_map == {"arr": ARR}
    assert TOKEN not in repr(cfg)
    with pytest.raises(ConfigError) as caught:
        parse_config("crm:\n  kind: pipedrive\n  api_token: abc123\n", "csops.yaml", {})
    [problem] = caught.value.problems
    assert (problem.line, problem.col, problem.hint) == (
        3, 14, "put the Pipedrive API token in an environment variable and write ${PIPEDRIVE_API_TOKEN}")
    settings = replace(Settings.load(env={"CSOPS_HOME": str(tmp_path)}), config=cfg)
    part = await build_crm(settings)
    try:
        assert await part.check() == []
        account = await part.connector.get_account("42")
        assert account is not None and account.arr == 120000.0
    finally:
        await part.close()


async def test_scans_page_through_organizations_by_id_with_the_filters(pd: Pd) -> None:
    from connectors.base import AccountLister

    for oid in (7, 100, 250):  # ids whose text order differs from their number order
        pd.fake.add_org(oid, f"Org {oid}", 7, **{RENEWAL: f"2027-0{oid % 9 + 1}-01", SEGMENT: "smb"})
    assert isinstance(pd.crm, AccountLister)
    first = await pd.crm.list_accounts(limit=2)
    rest = await pd.crm.list_accounts(after=first[-1].id, limit=2)
    assert [a.id for a in first] + [a.id for a in rest] == ["7", "42", "100", "250"]
    window = [("renewal_date", date(2027, 5, 1), date(2027, 5, 31))]
    found = await pd.crm.list_accounts(dates=window)
    assert [(a.id, a.renewal_date) for a in found] == [("42", date(2027, 5, 4))]
    assert [a.id for a in await pd.crm.list_accounts(segments=["smb"])] == ["7", "100", "250"]
    with pytest.raises(ValueError, match="contract_start has no Pipedrive field"):
        await pd.crm.list_accounts(dates=[("contract_start", date(2027, 1, 1), date(2027, 2, 1))])
