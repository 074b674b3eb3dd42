"""DailyScan and ScheduleTick on Temporal, and the schedules ``ensure_schedule`` keeps.

The workflows run on the time-skipping server (tests/workflows/harness.py) with the real SQL CRM
and store; the schedules need a server that has the Schedule API, which the time-skipping server
lacks, so that test runs the Temporal dev server (the ``temporal`` binary in the venv, on a free port).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine.config.config import CalendarConfig, Config, ScanConfig
from engine.config.settings import Settings
from engine.language.context import Calendar
from engine.language.validate import check_text
from engine.runtime.scanflow import (
    DAILY_SCAN_ID,
    DailyScan,
    ScanActivities,
    ScanInput,
    ScheduleTick,
    TickInput,
    ensure_schedule,
    tick_schedule_id,
)
from engine.runtime.temporal import temporal_starter
from engine.runtime.workflow import sandbox_runner
from engine.store.store import Store
from tests.workflows.harness import stack

TEMPORAL = str(Path(sys.executable).parent / "temporal")
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()

RENEWAL = """
playbook: renewal-90
title: Renewal at 90 days
triggers:
  - contract_milestone: { field: renewal_date, days_before: 90 }
audience:
  segments: [strategic]
steps:
  - id: call
    task: { title: "Renewal call for {{ account.name }}" }
"""

WEEKLY = """
playbook: weekly
title: Weekly check
triggers:
  - schedule: { cron: "0 9 * * 1", timezone: Europe/Berlin }
audience:
  segments: [smb]
steps:
  - id: note
    task: { title: "Weekly check" }
"""


async def test_the_daily_scan_starts_each_due_run_exactly_once(tmp_path: Path) -> None:
    async with stack(tmp_path, renewal=TODAY + timedelta(days=90)) as s:
        playbook = s.register(RENEWAL)
        beta = dataclasses.replace(await s.crm_account_copy("beta"), renewal_date=TODAY + timedelta(days=91))
        gamma = dataclasses.replace(await s.crm_account_copy("gamma"), segment="smb")
        for account in (beta, gamma):
            s.crm.add_account(account)
        store = Store(f"sqlite:///{tmp_path}/store.db")
        scans = ScanActivities(crm=s.crm, store=store, playbooks=lambda: {playbook.id: playbook}, task_queue=s.queue,
                               calendar={"timezone": "UTC"},
                               start=temporal_starter(s.env.client, s.queue, calendar=Calendar()))
        queue = f"scan-{uuid.uuid4()}"
        try:
            async with Worker(s.env.client, task_queue=queue, workflows=[DailyScan, ScheduleTick],
                              activities=scans.all(), workflow_runner=sandbox_runner(),
                              workflow_failure_exception_types=[Exception]):
                async def scan() -> tuple[int, int, str]:
                    summary = await s.env.client.execute_workflow(
                        DailyScan.run, ScanInput(now=NOW.isoformat()), id=f"scan-{uuid.uuid4()}", task_queue=queue)
                    return summary.started, summary.suppressed, summary.since

                assert await scan() == (1, 0, (TODAY - timedelta(days=1)).isoformat())  # acme started; gamma (smb)
                # is outside the audience segments, which the scan filters in SQL: not even a suppression
                assert await scan() == (0, 0, "")  # the day is scanned already
                await store.set_last_scan("contract_milestone", TODAY - timedelta(days=1))  # as if not noted
                assert await scan() == (0, 1, (TODAY - timedelta(days=1)).isoformat())

                run_id = f"pb:renewal-90:acme:{TODAY + timedelta(days=90)}"
                await s.env.client.get_workflow_handle(run_id).result()
            assert [t.title for t in s.crm.list_tasks()] == ["Renewal call for Acme Corp"]
            runs = (await store.runs(playbook="renewal-90")).runs
            assert [(r.run_id, r.account_id) for r in runs] == [(run_id, "acme")]
            reasons = sorted(d.reason for d in await store.decisions(playbook="renewal-90"))
            assert reasons == ["already_active", "started"]
        finally:
            store.close()


async def test_a_tick_starts_a_run_per_account_in_the_audience(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        playbook = s.register(WEEKLY)
        for name in ("small-1", "small-2"):
            s.crm.add_account(dataclasses.replace(await s.crm_account_copy(name), segment="smb"))
        store = Store(f"sqlite:///{tmp_path}/store.db")
        scans = ScanActivities(crm=s.crm, store=store, playbooks=lambda: {playbook.id: playbook}, task_queue=s.queue,
                               start=temporal_starter(s.env.client, s.queue, calendar=Calendar()))
        queue = f"tick-{uuid.uuid4()}"
        try:
            async with Worker(s.env.client, task_queue=queue, workflows=[ScheduleTick], activities=scans.all(),
                              workflow_runner=sandbox_runner(),
                              workflow_failure_exception_types=[Exception]):
                inp = TickInput(cron="0 9 * * 1", timezone="Europe/Berlin", at="2026-03-02T08:00:05+00:00")
                first = await s.env.client.execute_workflow(ScheduleTick.run, inp, id=f"t-{uuid.uuid4()}",
                                                            task_queue=queue)
                again = await s.env.client.execute_workflow(ScheduleTick.run, inp, id=f"t-{uuid.uuid4()}",
                                                            task_queue=queue)
            assert (first.today, first.started, again.started, again.suppressed) == (
                "2026-03-02T08:00:00+00:00", 2, 0, 2)
            runs = (await store.runs(playbook="weekly")).runs
            assert sorted(r.run_id for r in runs) == [f"pb:weekly:{a}:2026-03-02T08:00:00+00:00"
                                                      for a in ("small-1", "small-2")]
        finally:
            store.close()


async def schedule_ids(client: Client) -> set[str]:
    return {s.id async for s in await client.list_schedules()}


async def until(check: Callable[[], Awaitable[bool]], deadline: float = 20.0) -> None:
    """Poll an async condition (list visibility is eventually consistent) until it holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await check():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_ensure_schedule_is_idempotent_and_follows_config_and_playbooks() -> None:
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=TEMPORAL) as env:
        client = env.client
        weekly = check_text(WEEKLY, "<test>").playbook
        assert weekly is not None
        config = Config(calendar=CalendarConfig(timezone="Europe/Berlin"))
        settings = Settings.from_env({"CSOPS_TASK_QUEUE": "q"}, config)
        tick = tick_schedule_id("0 9 * * 1", "Europe/Berlin")

        assert await ensure_schedule(client, settings, {"weekly": weekly}) == sorted([DAILY_SCAN_ID, tick])
        assert await ensure_schedule(client, settings, {"weekly": weekly}) == sorted([DAILY_SCAN_ID, tick])
        await until(lambda: _has(client, {DAILY_SCAN_ID, tick}))
        desc = await client.get_schedule_handle(DAILY_SCAN_ID).describe()
        assert desc.schedule.spec.time_zone_name == "Europe/Berlin"
        assert [c.hour[0].start for c in desc.schedule.spec.calendars] == [6]

        later = Settings.from_env({"CSOPS_TASK_QUEUE": "q"},
                                  dataclasses.replace(config, scan=ScanConfig(cron="30 7 * * *")))
        assert await ensure_schedule(client, later, {}) == [DAILY_SCAN_ID]
        desc = await client.get_schedule_handle(DAILY_SCAN_ID).describe()
        assert [(c.hour[0].start, c.minute[0].start) for c in desc.schedule.spec.calendars] == [(7, 30)]
        try:
            await client.get_schedule_handle(tick).describe()
            raise AssertionError("the tick schedule no playbook uses was not deleted")
        except RPCError:
            pass
        await until(lambda: _has(client, {DAILY_SCAN_ID}, exact=True))


async def _has(client: Client, ids: set[str], exact: bool = False) -> bool:
    found = await schedule_ids(client)
    return found == ids if exact else ids <= found
