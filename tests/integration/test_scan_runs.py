"""``csops runs`` shows the daily scan above the runs: while it runs (live progress) and once it is done.

A real ``temporal server start-dev``, a worker in this process running ``DailyScan`` with the real paged
activities over the built-in SQL CRM and store (five accounts due, pages of two), and ``csops runs``
as a separate process, as a person types it. The second page waits until ``csops runs`` has looked,
so the scan is caught half-way: one page done, two accounts read, two runs started.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.worker import Worker

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.language.context import Calendar
from engine.language.validate import check_text
from engine.runtime.scanflow import DailyScan, ScanInput
from engine.runtime.scanpages import PageActivities, PageInput, PageResult, beating
from engine.runtime.temporal import temporal_starter
from engine.runtime.workflow import sandbox_runner
from engine.store.store import Store
from tests.integration.procs import (
    Procs,
    clean_env,
    free_port,
    start_dev_server,
    unique_queue,
    wait_for_frontend,
    wait_until,
)

pytestmark = pytest.mark.asyncio

PLAYBOOK = """
playbook: renewal-90
title: Renewal at 90 days
triggers:
  - contract_milestone: { field: renewal_date, days_before: 90 }
steps:
  - id: call
    task: { title: "Renewal call for {{ account.name }}" }
"""


async def csops(env: Mapping[str, str], *args: str) -> str:
    """``csops ARGS`` in its own process (without blocking this loop, whose worker answers its query)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "engine.cli", *args, env=dict(env),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_csops_runs_shows_the_daily_scan_while_it_runs_and_after(tmp_path: Path, procs: Procs) -> None:
    port = free_port()
    server = await start_dev_server(procs, tmp_path / "temporal.db", port, free_port())
    temporal = await wait_for_frontend(f"127.0.0.1:{port}", 60, server)
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    today = datetime.now(UTC).date()
    playbook = check_text(PLAYBOOK, "renewal-90.yaml").playbook
    assert playbook is not None
    crm, store = SQLCRM(url), Store(url)
    for i in range(5):
        crm.add_account(Account(id=f"a{i}", name=f"Account {i}", renewal_date=today + timedelta(days=90)))
    crm.add_account(Account(id="later", name="Later", renewal_date=today + timedelta(days=91)))
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "renewal-90.yaml").write_text(PLAYBOOK, encoding="utf-8")
    env = clean_env(CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", CSOPS_HOME=str(tmp_path / "home"),
                    CSOPS_DATABASE_URL=url, CSOPS_PLAYBOOKS=str(books), CSOPS_TASK_QUEUE=unique_queue("runs"))
    pages = PageActivities(crm=crm, store=store, playbooks=lambda: {playbook.id: playbook},
                           start=temporal_starter(temporal, unique_queue("no-worker"), calendar=Calendar()))
    looked, calls = asyncio.Event(), 0

    @activity.defn(name="csops_scan_page")
    async def page(inp: PageInput) -> PageResult:
        nonlocal calls
        calls += 1
        if calls == 2:
            async with beating():  # the second page waits, alive, until csops runs has looked
                await looked.wait()
        return await pages.page(inp)

    queue = unique_queue("scan")
    try:
        async with Worker(temporal, task_queue=queue, workflows=[DailyScan],
                          activities=[pages.plan, page, pages.finish], workflow_runner=sandbox_runner()):
            handle = await temporal.start_workflow(DailyScan.run, ScanInput(page=2), id="csops-daily-scan-run-test",
                                                   task_queue=queue)
            await wait_until(lambda: calls == 2, 60, "the second page")
            window = f"window ({today - timedelta(days=1)}, {today}]"
            running = (await csops(env, "runs")).splitlines()
            assert running[0] == (f"daily scan csops-daily-scan-run-test: running, {window}, 1 pages, 2 accounts "
                                  "read, 2 due, 2 started, 1 playbooks with pages left; last day scanned: none")
            assert sorted(line.split()[0] for line in running[1:3]) == [
                f"pb:renewal-90:a{i}:{today + timedelta(90)}" for i in (0, 1)]  # started at once: in any order
            looked.set()
            await handle.result()
        done = await csops(env, "runs")
        assert done.splitlines()[0] == (f"daily scan csops-daily-scan-run-test: completed, {window}, 3 pages, "
                                        "5 accounts read, 5 due, 5 started, 0 playbooks with pages left; "
                                        f"last day scanned: {today}")
        assert "5 run(s)" in done
        as_json = json.loads(await csops(env, "runs", "--format", "json"))
        assert {k: as_json["daily_scan"][k] for k in ("workflow_id", "status", "last_scanned")} == {
            "workflow_id": "csops-daily-scan-run-test", "status": "completed", "last_scanned": today.isoformat()}
        assert as_json["daily_scan"]["progress"]["started"] == 5
        # Not a run of one account or playbook, nor a failed one: not shown there.
        assert not (await csops(env, "runs", "--account", "a0")).startswith("daily scan")
        assert not (await csops(env, "runs", "--status", "failed")).startswith("daily scan")
    finally:
        crm.close()
        store.close()

