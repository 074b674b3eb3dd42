"""The forecast equals what happens live: the same accounts and events replayed through real parts
(SQL CRM, store, outboxes, ledger, worker) give the counts the sandboxed forecast gives; and the
"today" answer names each account's blocking check."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.base import Account, Contact, User
from connectors.ledger import Ledger
from connectors.outbox import ChatOutbox, EmailOutbox
from connectors.sqlcrm import SQLCRM
from engine.cli.cli_forecast import read_events
from engine.language.context import Calendar
from engine.language.validate import check_text
from engine.reports.forecast import forecast_replay, load_fleet, would_start_today
from engine.reports.replay import Clock, drive, shift_account, shift_for
from engine.runtime.activities import PlaybookActivities
from engine.runtime.runrecord import is_running
from engine.runtime.temporal import temporal_signaller, temporal_starter
from engine.runtime.workflow import PlaybookRun, sandbox_runner
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from engine.triggers.scan import daily_scan
from tests.workflows.harness import TEST_SERVER

START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday, in the past of the test server's clock
DAYS = 21
PLAYBOOK = """\
playbook: watch
title: Watch renewals and health
triggers:
  - contract_milestone: {field: renewal_date, days_before: 60}
  - health_drop: {below: 50}
audience: {segments: [strategic]}
exit:
  when: account.renewal_status == 'renewed'
  close_open_tasks: true
steps:
  - id: call
    task:
      title: "Call {{ account.name }}"
      due: 2d
      escalate:
        - after: 3d
          notify: owner.manager
  - id: tell
    alert: {to: ["#cs-team"], text: "{{ account.name }} needs a call"}
  - id: pause
    wait: 5d
  - id: mail
    email: {to: primary_contact, subject: "Checking in", body: "Hi {{ contact.first_name }}"}
"""


def fleet() -> tuple[list[Account], list[Contact], list[User]]:
    users = [User(id="u-mgr", email="maria@example.com", name="Maria"),
             User(id="u-csm", email="carl@example.com", name="Carl", manager_id="u-mgr"),
             User(id="u-two", email="dana@example.com", name="Dana", manager_id="u-mgr")]
    accounts, contacts = [], []
    for i in range(6):
        renewal = START.date() + timedelta(days=60 + 3 * i)  # the 60-day milestone falls on day 3i
        accounts.append(Account(id=f"a{i}", name=f"Account {i}", segment="smb" if i == 5 else "strategic",
                                owner_id="u-csm" if i % 2 else "u-two", arr=1000.0, renewal_date=renewal,
                                renewal_status="open", health_score=80, health_band="green"))
        contacts.append(Contact(id=f"c{i}", account_id=f"a{i}", email=f"pat{i}@example.com", first_name="Pat",
                                primary=True))
    return accounts, contacts, users


def events() -> list[dict[str, Any]]:
    def at(day: float) -> str:
        return (START + timedelta(days=day, hours=10)).isoformat()
    return [{"id": "h1", "type": "health.updated", "account_id": "a4", "occurred_at": at(1), "data": {"score": 40}},
            {"id": "r1", "type": "account.updated", "account_id": "a2", "occurred_at": at(8),
             "data": {"fields": {"renewal_status": "renewed"}}},
            {"id": "h2", "type": "health.updated", "account_id": "a5", "occurred_at": at(2), "data": {"score": 30}}]


async def live(tmp_path: Path) -> dict[str, int]:
    """The same days replayed through the real parts; what they did."""
    pb = check_text(PLAYBOOK).playbook
    assert pb is not None
    accounts, contacts, users = fleet()
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    async with env:
        shift = shift_for(START, await env.get_current_time())
        url = f"sqlite:///{tmp_path / 'live.db'}"
        crm, store, ledger = SQLCRM(url), Store(url), Ledger(url)
        crm.upsert([*users, *[shift_account(a, shift) for a in accounts], *contacts])
        mail, chat = EmailOutbox(tmp_path / "mail"), ChatOutbox(tmp_path / "chat.jsonl")
        queue, clock, cal = f"live-{uuid.uuid4()}", Clock(START), Calendar()
        starter = temporal_starter(env.client, queue, calendar=cal)
        acts = PlaybookActivities(crm=crm, mailer=mail, chat=chat, ledger=ledger)
        ingestor = Ingestor(store=store, crm=crm, playbooks=lambda: {pb.id: pb}, start=starter, calendar=cal,
                            signal_run=temporal_signaller(env.client), now=clock,
                            still_running=lambda r: is_running(store, env.client, r))
        try:
            async with Worker(env.client, task_queue=queue, workflows=[PlaybookRun], activities=acts.all(),
                              workflow_runner=sandbox_runner()):
                async def scan() -> None:
                    await daily_scan(crm, store, [pb], start=starter, now=clock(), calendar=cal)

                async def ingest(batch: list[dict[str, Any]]) -> None:
                    await ingestor.ingest(batch, process=True)
                await drive(env, clock, events=events(), start=START, days=DAYS, shift=shift, scan=scan,
                            ingest=ingest)
            runs = await store.runs(limit=1000)
            return {"runs": len(runs.runs), "tasks": len(crm.list_tasks()), "alerts": len(chat.messages()),
                    "emails": len(mail.messages())}
        finally:
            for part in (crm, store, ledger):
                part.close()


async def test_the_forecast_counts_what_a_live_replay_does(tmp_path: Path) -> None:
    pb = check_text(PLAYBOOK).playbook
    assert pb is not None
    accounts, contacts, users = fleet()
    forecast = await forecast_replay(pb, accounts=accounts, contacts=contacts, users=users, events=events(),
                                     start=START, days=DAYS, calendar=Calendar())
    happened = await live(tmp_path)
    totals = forecast["totals"]
    assert {"runs": forecast["runs"], "tasks": totals["tasks"], "alerts": totals["alerts"],
            "emails": totals["emails"]} == happened
    # Hand count: milestones of a0..a4 fall on days 0, 3, 6, 9, 12 (a5 is smb: out of the audience); a4's
    # health drop on day 1 starts it first (its milestone is then already active). a2 renews on day 8,
    # before its 5-day wait ends. Escalation alerts to the manager add to the alerts.
    assert happened["runs"] == 5 and happened["tasks"] == 5 and happened["emails"] == 4
    assert sum(w["tasks"] for w in forecast["per_week"].values()) == 5
    assert forecast["per_person"]["carl@example.com"]["tasks"] + forecast["per_person"]["dana@example.com"][
        "tasks"] == 5
    assert list(forecast["per_week"]) == ["2026-W37", "2026-W38", "2026-W39"]
    assert sum(n["tasks"] for weeks in forecast["per_person_week"].values() for n in weeks.values()) == 5


async def test_today_names_the_check_that_stops_each_account(tmp_path: Path) -> None:
    pb = check_text(PLAYBOOK).playbook
    assert pb is not None
    accounts, contacts, users = fleet()
    today = date.today()
    url = f"sqlite:///{tmp_path / 'today.db'}"
    crm, store = SQLCRM(url), Store(url)
    try:
        moved = [dataclasses.replace(a, renewal_date=today + timedelta(days=60 if a.id in ("a0", "a5") else 90))
                 for a in accounts]
        crm.upsert([*users, *moved, *contacts])
        await store.add_run(run_id="pb:watch:a1:once", playbook="watch", version="v", account_id="a1",
                            started_at=datetime.now(UTC))
        answer = await would_start_today(store, crm, pb, now=datetime.now(UTC), calendar=Calendar())
        fleet_read = await load_fleet(crm, None)
    finally:
        crm.close()
        store.close()
    assert answer == {"accounts": 6, "start": ["a0"], "not_started": {
        "active run": ["a1"], "audience.segments": ["a5"], "no trigger fires": ["a2", "a3", "a4"]}}
    assert (len(fleet_read[0]), len(fleet_read[1]), sorted(u.id for u in fleet_read[2])) == (
        6, 6, ["u-csm", "u-mgr", "u-two"])


@pytest.mark.parametrize(("text", "where"), [("[1, 2]", "event 1 is not an event object"),
                                             ("{not json", ":1: not JSON"),
                                             ('[{"occurred_at": "yesterday"}]', "not an ISO 8601 time")])
def test_a_bad_events_file_is_refused_with_where(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "events.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=where):
        read_events(path)
