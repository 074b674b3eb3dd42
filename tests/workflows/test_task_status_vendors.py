"""Task completion and cancellation reach HubSpot and Salesforce as their APIs have them (loopback
stand-ins in tests/fakes): a ``task.completed`` event completes the task once (HubSpot
``hs_task_status`` COMPLETED, Salesforce ``Status`` Completed), and a task closed because its run
exited is completed with a ``Cancelled by csops, not done: REASON`` line, read back as cancelled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from connectors.base import CRM
from connectors.hubspot import HubSpotCRM
from connectors.salesforce import SalesforceCRM
from engine.payloads.runtypes import Event
from engine.runtime.workflow import PlaybookRun
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.salesforce import FakeSalesforce
from tests.workflows.harness import Stack, stack

pytestmark = pytest.mark.asyncio

TOKEN = "pat-na1-00000000-task-status-token"
REVIEW = """\
playbook: vendor-review
title: Review
triggers: [{manual: {}}]
exit:
  on_events: [account.churned]
  close_open_tasks: true
steps:
  - id: review
    task: {title: "Review {{ account.name }}", wait_for_completion: true}
"""
EXITED = "run exited: event account.churned arrived"


async def open_task(s: Stack, account: str, occurrence: str) -> tuple[WorkflowHandle[Any, Any], str]:
    """Start a review run; the run and the id of the task it opened."""
    handle = await s.start(REVIEW, account_id=account, occurrence=occurrence)
    await s.env.sleep(timedelta(hours=1))
    [task_id] = (await handle.query(PlaybookRun.status)).open_tasks
    return handle, task_id


async def complete_twice_and_exit(s: Stack, crm: CRM, account: str) -> tuple[str, str]:
    """One run's task completed by an event delivered twice, another run exited; their task ids."""
    done, done_id = await open_task(s, account, "done")
    event = Event(id="t1", type="task.completed", account_id=account, data={"task_id": done_id})
    await done.signal("deliver_event", event)
    await done.signal("deliver_event", event)
    assert (await done.result()).outcome == "completed"
    gone, gone_id = await open_task(s, account, "gone")
    await gone.signal("deliver_event", Event(id="c1", type="account.churned", account_id=account))
    assert (await gone.result()).outcome == "exited"
    completed, cancelled = await crm.get_task(done_id), await crm.get_task(gone_id)
    assert completed is not None and (completed.status, completed.reason) == ("completed", "")
    assert cancelled is not None and (cancelled.status, cancelled.reason) == ("cancelled", EXITED)
    return done_id, gone_id


async def test_hubspot_task_completed_once_and_cancelled_with_a_body_line(tmp_path: Path) -> None:
    async with FakeHubSpot(TOKEN) as fake:
        csm = fake.add_owner("carl@example.com", "Carl", "CSM")
        fake.add_owner("ops@example.com", "Ops", "Fallback")
        company = fake.add_company(name="Initech", hubspot_owner_id=csm)
        crm = HubSpotCRM(TOKEN, base_url=fake.url)
        crm.index_delay = 0.2
        try:
            async with stack(tmp_path, crm=crm) as s:
                done_id, gone_id = await complete_twice_and_exit(s, crm, company)
        finally:
            await crm.close()
    tasks = {t.id: t.properties for t in fake.tasks()}
    assert tasks[done_id]["hs_task_status"] == "COMPLETED"
    assert tasks[gone_id]["hs_task_status"] == "COMPLETED"  # HubSpot has no cancelled status
    assert tasks[gone_id]["hs_task_body"] == f"Cancelled by csops, not done: {EXITED}"
    patches = [p for m, p in fake.requests if m == "PATCH" and p.endswith(f"/tasks/{done_id}")]
    assert len(patches) == 1  # completed once, though the event came twice


async def test_salesforce_task_completed_once_and_cancelled_with_the_configured_status(tmp_path: Path) -> None:
    async with FakeSalesforce(access_token="sf-token") as fake:
        csm = fake.add("User", Username="c@sf", Email="carl@example.com", Name="Carl CSM")
        fake.add("User", Username="o@sf", Email="ops@example.com", Name="Ops Fallback")
        account = fake.add("Account", Name="Initech", OwnerId=csm)
        crm = SalesforceCRM(fake.url, access_token="sf-token", cancelled_task_status="Deferred")
        try:
            async with stack(tmp_path, crm=crm) as s:
                done_id, gone_id = await complete_twice_and_exit(s, crm, account)
        finally:
            await crm.close()
    tasks = {t["Id"]: t for t in fake.tasks()}
    assert (tasks[done_id]["Status"], tasks[done_id]["IsClosed"]) == ("Completed", True)
    assert tasks[gone_id]["Status"] == "Deferred"  # the configured picklist value
    assert tasks[gone_id]["Description"] == f"Cancelled by csops, not done: {EXITED}"
    patches = [p for m, p in fake.requests if m == "PATCH" and p.endswith(f"/Task/{done_id}")]
    assert len(patches) == 1


async def test_salesforce_cancelled_task_is_completed_by_default(tmp_path: Path) -> None:
    async with FakeSalesforce(access_token="sf-token") as fake:
        csm = fake.add("User", Username="c@sf", Email="carl@example.com", Name="Carl CSM")
        account = fake.add("Account", Name="Initech", OwnerId=csm)
        task_id = fake.add("Task", Subject="Review", Description="Agenda", WhatId=account, OwnerId=csm)
        crm = SalesforceCRM(fake.url, access_token="sf-token")
        try:
            first = await crm.update_task(task_id, status="cancelled", reason="run cancelled: paused")
            again = await crm.update_task(task_id, status="cancelled", reason="run cancelled: paused")
        finally:
            await crm.close()
    assert (first.status, first.reason) == ("cancelled", "run cancelled: paused") and again == first
    [task] = fake.tasks()
    assert (task["Status"], task["IsClosed"]) == ("Completed", True)  # closed: off the owner's open list
    assert task["Description"] == "Agenda\n\nCancelled by csops, not done: run cancelled: paused"  # added once
