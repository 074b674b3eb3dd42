"""The paged DailyScan (engine/runtime/scanpages.py) on the time-skipping server with the real SQL CRM and store.

Two milestone playbooks over 23 accounts in pages of 3: every page runs once, the workflow continues
as new every 2 rounds, a worker stopped in the middle of a page leaves the rest to the next worker,
and the runs started are exactly the one-shot scan's decisions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from engine.language.context import Calendar
from engine.runtime.scanflow import DailyScan, ScanActivities, ScanInput, ScanSummary
from engine.runtime.scanpages import PageInput, PageResult
from engine.runtime.temporal import temporal_starter
from engine.runtime.workflow import sandbox_runner
from engine.store.store import Store
from engine.triggers import scan
from tests.workflows.harness import Stack, stack

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
PAGE = 3

RENEWAL_90 = """
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

RENEWAL_30 = RENEWAL_90.replace("renewal-90", "renewal-30").replace("90", "30")


async def world(s: Stack) -> dict[str, Any]:
    """Accounts a00..a21 besides acme: every third due at 90 days, every fifth at 30, a few in another segment."""
    books = {p.id: p for p in (s.register(RENEWAL_90), s.register(RENEWAL_30))}
    for i in range(22):
        days = 90 if i % 3 == 0 else 30 if i % 5 == 0 else 200
        account = dataclasses.replace(await s.crm_account_copy(f"a{i:02d}"), renewal_date=TODAY + timedelta(days=days),
                                      segment="smb" if i % 7 == 6 else "strategic")
        s.crm.add_account(account)
    return books


async def expected(s: Stack, store: Store, books: dict[str, Any]) -> set[tuple[str, str]]:
    """The one-shot scan's starts (engine/triggers/scan.py find_due), before anything is started."""
    found, _ = await scan.find_due(s.crm, store, books.values(), since=TODAY - timedelta(days=1), today=TODAY,
                                   now=NOW, calendar=Calendar())
    return {(f.playbook.id, f.decision.account_id) for f in found if f.decision.outcome == "start"}


def recording(acts: list[Callable[..., Any]], calls: list[tuple[str, str]],
              stall: asyncio.Event | None = None, stall_at: int = 0) -> list[Callable[..., Any]]:
    """The activities with ``csops_scan_page`` wrapped: each call noted; call number ``stall_at`` hangs."""
    page = next(a for a in acts if getattr(a, "__temporal_activity_definition").name == "csops_scan_page")

    @activity.defn(name="csops_scan_page")
    async def wrapped(inp: PageInput) -> PageResult:
        calls.append((inp.playbook, inp.after))
        if stall is not None and len(calls) == stall_at:
            stall.set()
            await asyncio.Future()  # the worker is stopped while this page is in flight
        result: PageResult = await page(inp)
        return result
    return [wrapped if a is page else a for a in acts]


def scan_activities(s: Stack, store: Store, books: dict[str, Any]) -> list[Callable[..., Any]]:
    return ScanActivities(crm=s.crm, store=store, playbooks=lambda: books, task_queue=s.queue,
                          calendar={"timezone": "UTC"},
                          start=temporal_starter(s.env.client, s.queue, calendar=Calendar())).all()


async def started_runs(store: Store) -> list[tuple[str, str]]:
    runs = (await store.runs(limit=1000)).runs
    return sorted((r.playbook, r.account_id) for r in runs)


async def continued(handle: WorkflowHandle[Any, Any]) -> int:
    """How many times the first run of ``handle`` and its successors continued as new."""
    n, run_id = 0, handle.first_execution_run_id
    while run_id:
        nxt = ""
        async for event in handle._client.get_workflow_handle(handle.id, run_id=run_id).fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                nxt = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        n, run_id = n + (1 if nxt else 0), nxt
    return n


async def test_every_page_runs_once_and_the_runs_are_the_one_shot_scans(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        books = await world(s)
        store = Store(f"sqlite:///{tmp_path}/store.db")
        want = await expected(s, store, books)
        assert len(want) == 9  # 7 at 90 days (a00, a03, .., a21 but a06 smb), 2 at 30 (a05, a10; a20 is smb)
        calls: list[tuple[str, str]] = []
        queue = f"scan-{uuid.uuid4()}"
        try:
            async with Worker(s.env.client, task_queue=queue, workflows=[DailyScan],
                              activities=recording(scan_activities(s, store, books), calls),
                              workflow_runner=sandbox_runner(), workflow_failure_exception_types=[Exception]):
                handle = await s.env.client.start_workflow(
                    DailyScan.run, ScanInput(now=NOW.isoformat(), page=PAGE, rounds=2), id=f"scan-{uuid.uuid4()}",
                    task_queue=queue)
                summary: ScanSummary = await handle.result()
                again: ScanSummary = await s.env.client.execute_workflow(
                    DailyScan.run, ScanInput(now=NOW.isoformat(), page=PAGE), id=f"scan-{uuid.uuid4()}",
                    task_queue=queue)
                hops = await continued(handle)
            assert len(calls) == len(set(calls))
            # The audience segment is filtered in SQL. renewal-90: 7 candidates (a00..a21 step 3 but a06, smb)
            # -> pages of 3, 3, 1; renewal-30: a05, a10 (a20 is smb) -> one short page.
            # Two playbooks a round, two rounds a run: the third round is in the continued run.
            assert sorted(calls) == [("renewal-30", ""), ("renewal-90", ""), ("renewal-90", "a09"),
                                     ("renewal-90", "a18")]
            assert hops == 1
            assert (summary.started, summary.since, again.started, again.note) == (
                9, (TODAY - timedelta(days=1)).isoformat(), 0, f"{TODAY} is scanned already")
            assert set(await started_runs(store)) == want and len(await started_runs(store)) == 9
            assert await store.last_scan(scan.SCAN_NAME) == TODAY
        finally:
            store.close()


async def test_a_worker_stopped_mid_scan_leaves_the_rest_to_the_next(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        books = await world(s)
        store = Store(f"sqlite:///{tmp_path}/store.db")
        want = await expected(s, store, books)
        first: list[tuple[str, str]] = []
        second: list[tuple[str, str]] = []
        stalled = asyncio.Event()
        queue = f"scan-{uuid.uuid4()}"
        try:
            acts = scan_activities(s, store, books)
            async with Worker(s.env.client, task_queue=queue, workflows=[DailyScan],
                              activities=recording(acts, first, stalled, stall_at=3),
                              workflow_runner=sandbox_runner(), graceful_shutdown_timeout=timedelta(0),
                              max_cached_workflows=0):  # no sticky queue: its tasks move on at once
                handle = await s.env.client.start_workflow(
                    DailyScan.run, ScanInput(now=NOW.isoformat(), page=PAGE), id=f"scan-{uuid.uuid4()}",
                    task_queue=queue)
                await asyncio.wait_for(stalled.wait(), 30)
                progress = await handle.query(DailyScan.progress)
            assert progress["pages"] == 2 and progress["started"] > 0
            async with Worker(s.env.client, task_queue=queue, workflows=[DailyScan],
                              activities=recording(acts, second),
                              workflow_runner=sandbox_runner()):
                summary: ScanSummary = await handle.result()
            done_before = set(first[:2])
            assert first[2] in second and not done_before & set(second)  # only the stopped page ran again
            assert len(second) <= 2 and len(set(first) | set(second)) == 4
            # A page cut off after some starts counts them as suppressed when it runs again: the runs are the truth.
            assert summary.started <= 9 and summary.since == (TODAY - timedelta(days=1)).isoformat()
            assert set(await started_runs(store)) == want and len(await started_runs(store)) == 9
        finally:
            store.close()
