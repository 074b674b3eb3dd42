"""The store's record of a run follows Temporal: the step audit while it runs, the ending once it
ended, each written once however often it is refreshed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus

from engine.language.validate import check_text
from engine.payloads.runtypes import RunStatus
from engine.runtime.runrecord import as_dict, is_running, refresh
from engine.runtime.starter import begin_run
from engine.store.store import Store
from tests.workflows.harness import stack

PLAYBOOK = """\
playbook: recorded
title: Recorded
triggers: [{manual: {}}]
steps:
  - id: hello
    note: {text: "Hello {{ account.name }}"}
  - id: pause
    wait: 2d
  - id: bye
    note: {text: "Bye"}
  - id: done
    exit: {outcome: success, reason: all said}
"""


async def test_refresh_records_the_timeline_and_the_ending_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    playbook = check_text(PLAYBOOK).playbook
    assert playbook is not None
    try:
        async with stack(tmp_path) as s:
            outcome, run_id, temporal_run_id = await begin_run(s.env.client, playbook, account_id="acme",
                                                               task_queue=s.queue)
            assert outcome == "started" and temporal_run_id
            await store.add_run(run_id=run_id, temporal_run_id=temporal_run_id, playbook=playbook.id,
                                version=playbook.version, account_id="acme", started_at=datetime.now(UTC))
            handle = s.env.client.get_workflow_handle(run_id)
            with s.env.auto_time_skipping_disabled():
                while "hello" not in (await handle.query("status", result_type=RunStatus)).steps:
                    await s.env.sleep(timedelta(seconds=0.2))
                assert await is_running(store, s.env.client, run_id)
                await refresh(store, s.env.client, run_id)
            assert [(r.step, r.status) for r in await store.timeline(run_id)] == [("hello", "done")]
            await s.env.sleep(timedelta(days=3))  # past the 2-day wait: the run ends
            while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
                await s.env.sleep(timedelta(seconds=1))
            record = await refresh(store, s.env.client, run_id)
            await refresh(store, s.env.client, run_id)
            assert not await is_running(store, s.env.client, run_id)
            rows = await store.timeline(run_id)
    finally:
        store.close()
    assert record is not None and record.status == "exited" and record.reason == "success: all said"
    timeline = as_dict(record, rows)["timeline"]
    assert [(t["step"], t["status"]) for t in timeline] == [("hello", "done"), ("pause", "done"), ("bye", "done"),
                                                           ("done", "done")]
    assert len(rows) == 4  # refreshed three times, each transition recorded once
