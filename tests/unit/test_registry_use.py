"""The playbook registry is validated once, however many events, starts and activities read it (issue 12),
and SIGHUP reloads it in the process that installed ``reload_on_hangup``."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

import engine.root as root_module
from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.language.model import Playbook
from engine.root import Registry, fingerprint, reload_on_hangup
from engine.runtime.scanpages import PageActivities, PageInput, ScanState
from engine.runtime.starter import check_playbooks
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from engine.triggers.signals import Decision

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
RISK = """\
playbook: {pid}
title: Risk
triggers: [{{event: {{type: billing.invoice_overdue}}}}]
steps:
  - id: log
    note: {{text: "overdue"}}
"""
RENEWAL = """\
playbook: renewal
title: Renewal
triggers: [{contract_milestone: {field: renewal_date, days_before: 30}}]
steps:
  - id: log
    note: {text: "renewal"}
"""


class Counting:
    """check_playbooks, counting the validations."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, folder: Path) -> tuple[dict[str, Playbook], list[str]]:
        self.calls += 1
        return check_playbooks(folder)


def folder_with_playbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "risk.yaml").write_text(RISK.format(pid="risk"), encoding="utf-8")
    (folder / "renewal.yaml").write_text(RENEWAL, encoding="utf-8")
    return folder


async def test_events_and_scan_activities_do_not_validate_the_playbooks_again(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    try:
        for i in range(20):
            crm.add_account(Account(id=f"acct-{i}", name=f"Account {i}"))
        load, looks = Counting(), list[Path]()
        def look(folder: Path) -> tuple[tuple[str, int, int], ...]:
            looks.append(folder)
            return fingerprint(folder)

        monkeypatch.setattr(root_module, "fingerprint", look)
        # A clock that stands still: within one interval the folder is not even looked at again.
        registry = Registry(folder_with_playbooks(tmp_path), load, clock=lambda: 0.0)
        starts: list[Decision] = []

        async def start(pb: Playbook, decision: Decision) -> tuple[str, str]:
            starts.append(decision)
            return decision.run_id, "t"

        async def signal_run(run_id: str, event: object) -> bool:
            return True

        ingestor = Ingestor(store=store, crm=crm, playbooks=registry, start=start, signal_run=signal_run,
                            now=lambda: NOW)
        events = [{"id": f"e{i}", "type": "billing.invoice_overdue", "account_id": f"acct-{i % 20}",
                   "occurred_at": "2026-11-23T09:00:00Z", "data": {}} for i in range(200)]
        for at in range(0, len(events), 20):
            results = await ingestor.ingest(events[at:at + 20], process=True)
            assert all(r.status == "accepted" for r in results)
        # Every event was decided with the playbook in force (this start records no run, so none is active).
        assert len(starts) == len(events) and {d.playbook for d in starts} == {"risk"}
        pages = PageActivities(crm=crm, store=store, playbooks=registry)
        for _ in range(50):
            await pages.plan(ScanState(now=NOW.isoformat()))
            await pages.page(PageInput(playbook="renewal", after="", since="2026-11-22", today="2026-11-23",
                                       now=NOW.isoformat(), page=100))
        assert load.calls == 1 and registry.loads == 1 and len(looks) == 1
    finally:
        store.close()
        crm.close()


async def test_sighup_reloads_the_registry_off_the_event_loop(tmp_path: Path) -> None:
    folder = folder_with_playbooks(tmp_path)
    registry = Registry(folder, check_every=3600)  # the folder look alone would not see the edit for an hour
    assert set(registry()) == {"risk", "renewal"}
    (folder / "more.yaml").write_text(RISK.format(pid="more"), encoding="utf-8")
    loop = asyncio.get_running_loop()
    reloaded = asyncio.Event()
    plain = registry.reload

    def reload() -> list[str]:
        try:
            return plain()
        finally:
            loop.call_soon_threadsafe(reloaded.set)

    registry.reload = reload  # type: ignore[method-assign]
    reload_on_hangup(registry)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(30):
            await reloaded.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert set(registry()) == {"risk", "renewal", "more"} and registry.loads == 2
