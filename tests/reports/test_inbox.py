"""The task inbox: completing a task wakes its run and completes the CRM task once, however often
it is asked (CLI function and API route), on the time-skipping server with the real ingestor."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from engine.api.app import create_app
from engine.language.validate import check_text
from engine.payloads.runtypes import RunOutcome
from engine.reports import TaskClosed, UnknownTask, complete_task, list_tasks
from engine.reports.inbox import event_id_for
from engine.runtime.runcontrol import TemporalWorkflows
from engine.runtime.runrecord import refresh
from engine.runtime.runtasks import get_task
from engine.runtime.starter import begin_run
from engine.runtime.temporal import temporal_signaller
from engine.triggers.ingest import Ingestor
from tests.workflows.harness import Stack, stack
from tests.workflows.test_playbook_run import monday

pytestmark = pytest.mark.asyncio
TOKEN = "inbox-test-token-0123456789abcdef"

PLAYBOOK = """\
playbook: review
title: Review, then thank
triggers: [{manual: {}}]
exit: {close_open_tasks: true}
steps:
  - id: review
    task:
      title: "Review {{ account.name }}"
      due: 1d
      wait_for_completion: true
  - id: thank
    note: {text: "reviewed"}
"""


async def started(s: Stack) -> tuple[WorkflowHandle[Any, Any], Ingestor]:
    pb = check_text(PLAYBOOK).playbook
    assert pb is not None and s.store is not None
    await monday(s)
    outcome, run_id, temporal_id = await begin_run(s.env.client, pb, account_id="acme", task_queue=s.queue)
    assert outcome == "started"
    await s.store.add_run(run_id=run_id, temporal_run_id=temporal_id, playbook=pb.id, version=pb.version,
                          account_id="acme", started_at=await s.env.get_current_time())
    await s.env.sleep(timedelta(hours=2, minutes=7))
    await refresh(s.store, s.env.client, run_id)
    ingestor = Ingestor(store=s.store, crm=s.crm, playbooks=dict, start=_no_start,
                        signal_run=temporal_signaller(s.env.client))
    return s.env.client.get_workflow_handle(run_id, result_type=RunOutcome), ingestor


async def completions(handle: WorkflowHandle[Any, Any]) -> int:
    """change_task activities the run scheduled (completing its task in the CRM)."""
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
               and e.activity_task_scheduled_event_attributes.activity_type.name == "change_task")


async def test_completing_twice_wakes_the_run_and_completes_the_crm_task_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        handle, ingestor = await started(s)
        assert s.store is not None
        today = (await s.env.get_current_time()).date()
        [task] = await list_tasks(s.store, today=today, owner="CARL@example.com", crm=s.crm)
        assert (task["title"], task["status"], task["overdue"]) == ("Review Acme Corp", "open", False)

        async def ingest(events: list[dict[str, Any]]) -> Any:
            return await ingestor.ingest(events, process=True)
        first = await complete_task(s.store, task["task_id"], ingest=ingest, crm=s.crm)
        second = await complete_task(s.store, task["task_id"], ingest=ingest, crm=s.crm)
        outcome = await handle.result()
        scheduled = await completions(handle)
        stored = await s.store.get_event(event_id_for(task["task_id"]))
        left = await list_tasks(s.store, today=today, crm=s.crm)
        [crm_task] = s.crm.list_tasks()
        with pytest.raises(UnknownTask):
            await complete_task(s.store, "no-such-task", ingest=ingest, crm=s.crm)
    assert (first.how, second.how) == ("event", "already")
    assert outcome.outcome == "completed" and outcome.steps["thank"].status == "done"  # the run moved on
    assert crm_task.status == "completed" and scheduled == 1
    assert stored is not None and stored.data["task_id"] == task["task_id"]
    assert left == []


async def test_the_api_completes_a_task_once_and_refuses_unknown_and_closed_ones(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        handle, ingestor = await started(s)
        assert s.store is not None
        app = create_app(store=s.store, ingestor=ingestor, token=TOKEN, crm=s.crm, process=False,
                         workflows=TemporalWorkflows(_client_of(s)))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            listed = (await client.get("/v1/tasks", params={"owner": "carl@example.com"}, headers=auth)).json()
            task_id = listed["tasks"][0]["task_id"]
            answers = [await client.post(f"/v1/tasks/{task_id}/complete", headers=auth) for _ in range(2)]
            await ingestor.process_pending()
            outcome = await handle.result()
            unknown = await client.post("/v1/tasks/nope/complete", headers=auth)
            anonymous = await client.get("/v1/tasks")
            report = (await client.get("/v1/reports/playbooks", params={"since": "30d"}, headers=auth)).json()
        scheduled = await completions(handle)
        row = await get_task(s.store, task_id)
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["how"] for a in answers] == ["event", "already"]
    assert outcome.outcome == "completed" and scheduled == 1
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_task"
    assert anonymous.status_code == 401
    assert row is not None and row.status == "completed"
    [book] = report["playbooks"]
    assert book["versions"][0]["tasks"]["completed"] == 1 and book["versions"][0]["runs"]["completed"] == 1


async def test_a_task_closed_by_its_run_cannot_be_completed(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        handle, ingestor = await started(s)
        assert s.store is not None
        await handle.signal("cancel", "moved")
        await handle.result()
        await refresh(s.store, s.env.client, handle.id)
        listed = await list_tasks(s.store, today=(await s.env.get_current_time()).date(), crm=None)
        row = (await get_task(s.store, s.crm.list_tasks()[0].id))
        assert row is not None and row.status == "cancelled" and listed == []
        with pytest.raises(TaskClosed):
            await complete_task(s.store, row.task_id, ingest=ingestor.ingest, crm=s.crm)


def _client_of(s: Stack) -> Any:
    async def client() -> Any:
        return s.env.client
    return client


async def _no_start(playbook: Any, decision: Any) -> tuple[str, str]:
    raise AssertionError("nothing should start")
