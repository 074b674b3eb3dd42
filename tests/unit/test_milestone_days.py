"""Milestone days are local dates of the calendar, and a milestone fires exactly once, scan or edit.

The calendar is Asia/Tokyo (UTC+9, no daylight saving), where the daily scan at 06:00 runs at
21:00 UTC of the day before: for the hours after it the local date is one ahead of the UTC date.
The store and the built-in CRM are real (SQLite); ``start`` records the starts and answers a second
start of a workflow id as Temporal does ("already running").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.language.context import Calendar
from engine.language.model import ContractMilestone, Playbook
from engine.language.validate import check_text
from engine.payloads.runtypes import Event
from engine.store.store import Store
from engine.triggers.explainaccount import explain_account
from engine.triggers.ingest import Ingestor
from engine.triggers.matcher import milestone
from engine.triggers.scan import daily_scan
from engine.triggers.signals import Decision

TOKYO = Calendar(timezone="Asia/Tokyo")
SCAN_AT = datetime(2027, 1, 6, 21, tzinfo=UTC)  # 06:00 on Thursday 7 January in Tokyo
LOCAL_TODAY = date(2027, 1, 7)
RENEWAL = check_text("playbook: renewal\ntitle: Renewal\ntriggers:\n"
                     "  - contract_milestone: {field: renewal_date, days_before: 90}\n"
                     "steps:\n  - id: t\n    task: {title: T}\n").playbook


@dataclass
class Rig:
    store: Store
    crm: SQLCRM
    started: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    async def start(self, playbook: Playbook, decision: Decision) -> tuple[str, str]:
        if decision.run_id in self.started:
            self.refused.append(decision.run_id)
            return "already running", ""
        self.started.append(decision.run_id)
        return "started", f"trid-{len(self.started)}"

    async def signal_run(self, run_id: str, event: Event) -> bool | str:
        return True

    def ingestor(self, now: datetime, calendar: Calendar | None) -> Ingestor:
        assert RENEWAL is not None
        return Ingestor(store=self.store, crm=self.crm, playbooks=lambda: {"renewal": RENEWAL}, start=self.start,
                        signal_run=self.signal_run, calendar=calendar, now=lambda: now)

    async def scan(self, now: datetime, calendar: Calendar = TOKYO) -> None:
        assert RENEWAL is not None
        await daily_scan(self.crm, self.store, [RENEWAL], start=self.start, now=now, calendar=calendar)

    async def edit(self, renewal: date, *, now: datetime, calendar: Calendar | None = TOKYO) -> tuple[str, ...]:
        event = {"id": f"edit-{renewal}-{now.timestamp()}", "type": "account.updated", "account_id": "acme",
                 "occurred_at": now.isoformat(), "data": {"fields": {"renewal_date": renewal.isoformat()}}}
        [result] = await self.ingestor(now, calendar).ingest([event], process=True)
        return result.decisions


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", lifecycle_stage="renew",
                            renewal_date=date(2027, 9, 1)))
    yield Rig(store, crm)
    store.close()
    crm.close()


def run_id(renewal: date) -> str:
    return f"pb:renewal:acme:{renewal.isoformat()}"


# --- local dates ----------------------------------------------------------------------------------

async def test_the_scan_counts_90_days_from_the_local_date(rig: Rig) -> None:
    rig.crm.add_account(Account(id="utc", name="UTC", renewal_date=date(2027, 4, 6)))  # 90 days after the UTC date
    rig.crm.add_account(Account(id="local", name="Local", renewal_date=date(2027, 4, 7)))  # after the local date
    await rig.scan(SCAN_AT)
    assert rig.started == ["pb:renewal:local:2027-04-07"]
    assert await rig.store.last_scan("contract_milestone") == LOCAL_TODAY


async def test_an_edit_to_exactly_90_local_days_out_fires_today(rig: Rig) -> None:
    # 05:00 in Tokyo on 7 January, before the scan; in UTC it is still 6 January, and the milestone tomorrow.
    decisions = await rig.edit(date(2027, 4, 7), now=SCAN_AT - timedelta(hours=1))
    assert rig.started == [run_id(date(2027, 4, 7))], decisions
    [record] = await rig.store.decisions(account_id="acme")
    assert record.seen["milestone_day"] == "2027-01-07" and record.seen["days_to_milestone"] == 0


async def test_explain_judges_the_milestone_on_the_local_date(rig: Rig) -> None:
    await rig.crm.update_account("acme", {"renewal_date": date(2027, 4, 7)})
    assert RENEWAL is not None
    got = await explain_account(store=rig.store, crm=rig.crm, playbooks={"renewal": RENEWAL}, account_id="acme",
                                playbook=None, now=SCAN_AT + timedelta(hours=1), calendar=TOKYO)
    [trigger] = [c for c in got.checks["renewal"] if c.name == "trigger 1"]
    assert trigger.state == "pass", trigger.text
    assert trigger.seen["milestone_day"] == "2027-01-07" and trigger.seen["days_to_milestone"] == 0


def test_a_business_day_milestone_is_counted_on_the_calendars_workdays() -> None:
    trig = ContractMilestone(field="renewal_date", days_before=3, business_days=True)
    sun_thu = Calendar(workdays=frozenset({6, 0, 1, 2, 3}), holidays=frozenset({date(2027, 1, 11)}),
                       timezone="Asia/Jerusalem")
    # Renewal Thursday 14 January: back over Wed 13, Tue 12, (Mon 11 off), Sun 10.
    probe = milestone(trig, "2027-01-14", sun_thu, date(2027, 1, 10), since=date(2027, 1, 9))
    assert probe.fires and probe.seen["milestone_day"] == "2027-01-10"


# --- exactly once (issue 10, item 5) ----------------------------------------------------------------

async def test_an_edit_to_n_days_out_after_todays_scan_fires_once_even_when_the_edit_path_is_behind(
        rig: Rig) -> None:
    await rig.scan(SCAN_AT)  # covers 7 January (Tokyo); nothing is due
    assert rig.started == []
    # An hour later the date is set to exactly 90 days out. The edit path's calendar is UTC (as
    # engine/wiring.py builds the Ingestor today): to it, it is still 6 January and the milestone is
    # tomorrow; the scan will never look at 7 January again, so the edit must fire it.
    await rig.edit(date(2027, 4, 7), now=SCAN_AT + timedelta(hours=1), calendar=None)
    assert rig.started == [run_id(date(2027, 4, 7))]
    [record] = await rig.store.decisions(account_id="acme")
    assert "the daily scan already covered 2027-01-07" in record.seen["why"]
    await rig.scan(SCAN_AT + timedelta(days=1))  # 8 January: the milestone is behind it
    await rig.scan(SCAN_AT + timedelta(days=2))
    assert rig.started == [run_id(date(2027, 4, 7))] and rig.refused == []


async def test_an_edit_to_n_days_out_after_todays_scan_fires_once(rig: Rig) -> None:
    await rig.scan(SCAN_AT)
    await rig.edit(date(2027, 4, 7), now=SCAN_AT + timedelta(hours=3))
    await rig.scan(SCAN_AT + timedelta(days=1))
    assert rig.started == [run_id(date(2027, 4, 7))] and rig.refused == []


async def test_an_edit_before_todays_scan_fires_once_and_the_scan_sees_it_started(rig: Rig) -> None:
    await rig.scan(SCAN_AT - timedelta(days=1))  # yesterday's scan
    await rig.edit(date(2027, 4, 7), now=SCAN_AT - timedelta(hours=2))  # 04:00 on 7 January
    await rig.scan(SCAN_AT)  # 06:00: the milestone day is in its window, the run exists already
    assert rig.started == [run_id(date(2027, 4, 7))]
    reasons = [d.reason for d in await rig.store.decisions(account_id="acme")]
    assert sorted(reasons) == ["already_active", "started"]


async def test_an_edit_to_tomorrows_milestone_is_left_to_tomorrows_scan(rig: Rig) -> None:
    await rig.scan(SCAN_AT)
    decisions: Any = await rig.edit(date(2027, 4, 8), now=SCAN_AT + timedelta(hours=1))
    assert rig.started == [] and decisions == ()
    await rig.scan(SCAN_AT + timedelta(days=1))
    assert rig.started == [run_id(date(2027, 4, 8))]
