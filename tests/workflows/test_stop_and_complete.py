"""A pending stop is honoured before every side effect and a cancel stops a waiting run at once;
a ``task.completed`` event completes the task in the CRM once; tasks closed because a run ended are
``cancelled`` with the reason, never ``completed``. On the time-skipping server, asserted on the
CRM, the outboxes and the run's history (which effects were scheduled, and when the run ended).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import ActivityEnvironment

from connectors.base import ChatMessage, NewTask, RetryableError, TaskRecord
from connectors.sqlcrm import SQLCRM
from engine.language.validate import check_text
from engine.payloads.runtypes import RULES, Event, RunInput, TaskChangeInput, run_id_for
from engine.runtime.runcontrol import TemporalWorkflows, cancel_run
from engine.runtime.workflow import PlaybookRun
from engine.store.store import Store
from tests.workflows.harness import Stack, record_history, stack
from tests.workflows.test_playbook_run import monday

pytestmark = pytest.mark.asyncio

REVIEW = """\
playbook: review
title: Review, then follow up
triggers: [{manual: {}}]
exit:
  on_events: [account.churned]
  close_open_tasks: true
steps:
  - id: review
    task:
      title: "Review {{ account.name }}"
      wait_for_completion: true
      escalate:
        - after: 5d
          notify: owner.manager
  - id: follow-up
    task: {title: "Follow up with {{ account.name }}"}
  - id: tell
    alert: {to: ["#cs-team"], text: "{{ account.name }} reviewed"}
  - id: thank
    email: {to: primary_contact, subject: "Thanks", body: "Hi {{ contact.first_name }}"}
"""

WAITS = """\
playbook: waits
title: A task, then a long wait and a wait for an event
triggers: [{manual: {}}]
exit:
  close_open_tasks: true
steps:
  - id: call
    task:
      title: "Call {{ account.name }}"
      escalate:
        - after: 40d
          notify: owner.manager
  - id: pause
    when: account.segment == 'strategic'
    wait: 30d
  - id: reply
    wait_for: {event: email.replied, timeout: 30d}
  - id: late
    note: {text: "after the waits"}
"""


async def activities_scheduled(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity types the run scheduled, in order (its side effects and reads)."""
    history = await handle.fetch_history()
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]


async def ended_after(handle: WorkflowHandle[Any, Any], moment: datetime) -> float:
    """Seconds of workflow time between ``moment`` and the run's end."""
    closed = (await handle.describe()).close_time
    assert closed is not None
    return (closed - moment).total_seconds()


async def stop_and_finish(s: Stack, handle: WorkflowHandle[Any, Any], signal: str, arg: Any) -> tuple[Any, float]:
    """Send the stop now; the run's outcome and how long after the stop it ended (workflow time).

    A run that ignores the stop (the bug this guards against) keeps waiting on its task: an hour
    later the task is reported done, so that it goes on and the assertions show what it did then.
    """
    at = await s.env.get_current_time()
    await handle.signal(signal, arg)
    await s.env.sleep(timedelta(hours=1))
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        for task in s.crm.list_tasks():
            await handle.signal("deliver_event", Event(id=f"done-{task.id}", type="task.completed",
                                                       data={"task_id": task.id}))
    out = await handle.result()
    return out, await ended_after(handle, at)


async def test_exit_event_while_waiting_on_a_task_stops_before_any_later_effect(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.start(REVIEW)
        # Off the day marks of the daily poll: a signal whose workflow task cancels a timer firing
        # meanwhile can wedge the time-skipping server (see tests/workflows/test_event_routing.py).
        await s.env.sleep(timedelta(days=2, hours=3))
        out, after = await stop_and_finish(s, handle, "deliver_event",
                                           Event(id="e1", type="account.churned", account_id="acme"))
        scheduled = await activities_scheduled(handle)
        await record_history(handle, "exit-while-waiting-on-task")
    assert (out.outcome, out.reason) == ("exited", "event account.churned arrived")
    assert after < 60
    assert "follow-up" not in out.steps and "tell" not in out.steps and "thank" not in out.steps
    assert scheduled == ["create_task", "get_task", "get_task", "change_task"]  # the task, 2 daily polls, closing it
    [task] = s.crm.list_tasks()
    assert (task.title, task.status, task.reason) == (
        "Review Acme Corp", "cancelled", "run exited: event account.churned arrived")
    assert s.chat.messages() == [] and s.mail.messages() == []  # no escalation, alert or email


async def test_cancel_while_waiting_on_a_task_ends_the_run_at_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.start(REVIEW)
        await s.env.sleep(timedelta(days=3, hours=3))
        out, after = await stop_and_finish(s, handle, "cancel", "account moved to another team")
        scheduled = await activities_scheduled(handle)
        await record_history(handle, "cancel-while-waiting-on-task")
    assert (out.outcome, out.reason) == ("cancelled", "account moved to another team")
    assert after < 60
    assert "follow-up" not in out.steps and "tell" not in out.steps
    assert scheduled == ["create_task", "get_task", "get_task", "get_task", "change_task"]
    [task] = s.crm.list_tasks()
    assert (task.status, task.reason) == ("cancelled", "run cancelled: account moved to another team")
    assert s.chat.messages() == [] and s.mail.messages() == []


async def test_cancel_during_a_30_day_wait_ends_the_run_at_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.start(WAITS)
        await s.env.sleep(timedelta(days=10))
        out, after = await stop_and_finish(s, handle, "cancel", "paused by ops")
        scheduled = await activities_scheduled(handle)
    assert (out.outcome, out.reason) == ("cancelled", "paused by ops")
    assert after < 60 and "pause" not in out.steps and "reply" not in out.steps
    assert scheduled == ["create_task", "change_task"]  # no escalation, no note
    assert [(t.status, t.reason) for t in s.crm.list_tasks()] == [("cancelled", "run cancelled: paused by ops")]
    assert s.crm.list_notes("acme") == [] and s.chat.messages() == []


async def test_cancel_during_wait_for_ends_the_run_at_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.start(WAITS)
        await s.env.sleep(timedelta(days=35))  # past the 30-day wait, in the wait for a reply
        out, after = await stop_and_finish(s, handle, "cancel", "customer asked to stop")
        scheduled = await activities_scheduled(handle)
    assert out.outcome == "cancelled" and after < 60
    assert out.steps["pause"].status == "done" and "reply" not in out.steps and "late" not in out.steps
    assert scheduled == ["create_task", "change_task"]  # the 40-day escalation never fired
    assert [(t.status, t.reason) for t in s.crm.list_tasks()] == [
        ("cancelled", "run cancelled: customer asked to stop")]
    assert s.crm.list_notes("acme") == [] and s.chat.messages() == []


async def test_task_completed_event_completes_the_task_in_the_crm_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.start(WAITS)
        await s.env.sleep(timedelta(days=1))
        [task] = s.crm.list_tasks()
        done = Event(id="d1", type="task.completed", account_id="acme", data={"task_id": task.id})
        await handle.signal("deliver_event", done)
        await handle.signal("deliver_event", done)  # delivered twice
        await s.env.sleep(timedelta(hours=1))
        [now] = s.crm.list_tasks()
        assert now.status == "completed"  # at once, while the run still waits its 30 days
        await handle.signal("deliver_event", Event(id="d2", type="task.completed", data={"task_id": task.id}))
        await s.env.sleep(timedelta(hours=1))
        await handle.signal("cancel", "enough")
        out = await handle.result()
        scheduled = await activities_scheduled(handle)
        await record_history(handle, "task-completed-by-event")
    assert out.outcome == "cancelled"
    assert scheduled == ["create_task", "change_task"]  # one completion, and no close: it is done
    assert await s.ledger.get(f"{handle.id}/call/completed") == {
        "task_id": task.id, "status": "completed", "assignee_id": "u-csm"}
    assert await s.ledger.get(f"{handle.id}/call/close") is None
    assert [(t.status, t.reason) for t in s.crm.list_tasks()] == [("completed", "")]


async def test_cancelling_a_task_someone_completed_leaves_it_completed(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        env = ActivityEnvironment()
        task = await s.crm.create_task(NewTask(account_id="acme", assignee_id="u-csm", title="T"), "k/t")
        s.crm.complete_task(task.id)
        out = await env.run(s.activities.change_task, TaskChangeInput(
            key="k/t/close", task_id=task.id, account_id="acme", status="cancelled", reason="run exited: x"))
        assert out["status"] == "completed"
        assert [(t.status, t.reason) for t in s.crm.list_tasks()] == [("completed", "")]


class DownChat:
    """Slack down: every post fails with a retryable error; ``calls`` counts the attempts."""

    def __init__(self) -> None:
        self.calls = 0

    async def post(self, message: ChatMessage, idempotency_key: str) -> str:
        self.calls += 1
        raise RetryableError("Slack answered 503")


ALERT_THEN_NOTE = """\
playbook: tell
title: Tell the team, then log it
triggers: [{manual: {}}]
steps:
  - id: tell
    alert: {to: ["#cs-team"], text: "{{ account.name }} needs a look"}
  - id: log
    note: {text: "team told"}
"""


async def test_cancel_while_an_effect_retries_stops_its_retries_at_once(tmp_path: Path) -> None:
    chat = DownChat()
    async with stack(tmp_path, chat=chat) as s:
        await monday(s)
        handle = await s.start(ALERT_THEN_NOTE)
        await s.env.sleep(timedelta(minutes=10))  # attempts 1 s, 2 s, 4 s... apart: Slack stays down
        tried = chat.calls
        assert tried >= 5
        at = await s.env.get_current_time()
        await handle.signal("cancel", "Slack outage, stop this one")
        out = await handle.result()
        after = await ended_after(handle, at)
        await record_history(handle, "cancel-while-effect-retries")
        await s.env.sleep(timedelta(hours=2))
    assert (out.outcome, out.reason) == ("cancelled", "Slack outage, stop this one")
    assert after < 60
    assert chat.calls <= tried + 1  # at most the attempt already running: no retry after the cancel
    assert "tell" not in out.steps and "log" not in out.steps and s.crm.list_notes("acme") == []


class SlowCRM(SQLCRM):
    """The built-in CRM, with a create_task that takes a second: a cancel can arrive during it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.creating = asyncio.Event()

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        self.creating.set()
        await asyncio.sleep(1.0)
        return await super().create_task(task, idempotency_key)


async def test_cancel_during_a_task_creation_keeps_and_closes_the_task_it_made(tmp_path: Path) -> None:
    crm = SlowCRM(f"sqlite:///{tmp_path}/crm.db")
    try:
        async with stack(tmp_path, crm=crm) as s:
            handle = await s.start(REVIEW)
            await asyncio.wait_for(crm.creating.wait(), 30)
            await handle.signal("cancel", "wrong account")
            out = await handle.result()
    finally:
        crm.close()
    assert (out.outcome, out.reason) == ("cancelled", "wrong account")
    [task] = s.crm.list_tasks()  # the attempt under way finished: its task is known to the run and closed
    assert out.steps["review"].result["task_id"] == task.id
    assert (task.status, task.reason) == ("cancelled", "run cancelled: wrong account")


async def test_exit_event_while_an_effect_retries_stops_its_retries(tmp_path: Path) -> None:
    chat = DownChat()
    text = ALERT_THEN_NOTE.replace("steps:\n", "exit: {on_events: [account.churned]}\nsteps:\n")
    async with stack(tmp_path, chat=chat) as s:
        await monday(s)
        handle = await s.start(text)
        await s.env.sleep(timedelta(minutes=10))
        tried = chat.calls
        await handle.signal("deliver_event", Event(id="x1", type="account.churned", account_id="acme"))
        out = await handle.result()
        await s.env.sleep(timedelta(hours=2))
    assert (out.outcome, out.reason) == ("exited", "event account.churned arrived")
    assert chat.calls <= tried + 1 and s.crm.list_notes("acme") == []


SAVE = """\
playbook: save
title: Save play
triggers: [{manual: {}}]
exit:
  when: account.health.score >= 70
  close_open_tasks: true
steps:
  - id: plan
    task: {title: "Write a save plan for {{ account.name }}", wait_for_completion: true}
  - id: tell
    alert: {to: ["#cs-risk"], text: "save plan done"}
"""


async def test_exit_criteria_met_while_waiting_on_a_task_end_the_run_at_once(tmp_path: Path) -> None:
    async with stack(tmp_path, health=30) as s:
        await monday(s)
        handle = await s.start(SAVE)
        await s.env.sleep(timedelta(days=1, hours=3))
        # A reading that leaves the criteria false wakes the run, which goes on waiting.
        await handle.signal("deliver_event", Event(id="h0", type="health.updated", data={"score": 40}))
        await s.env.sleep(timedelta(hours=1))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await s.crm_health(75)
        out, after = await stop_and_finish(s, handle, "deliver_event",
                                           Event(id="h1", type="health.updated", data={"score": 75}))
        await record_history(handle, "exit-criteria-while-waiting-on-task")
    assert (out.outcome, out.reason) == ("exited", "exit criteria met: account.health.score >= 70")
    assert after < 60 and "tell" not in out.steps and s.chat.messages() == []
    [task] = s.crm.list_tasks()
    assert (task.status, task.reason) == ("cancelled", "run exited: exit criteria met: account.health.score >= 70")


async def test_exit_event_signalled_with_the_start_ends_the_run_before_any_effect(tmp_path: Path) -> None:
    result = check_text(REVIEW, "<test>")
    assert result.playbook is not None
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.env.client.start_workflow(
            PlaybookRun.run, RunInput(rules=RULES, playbook=yaml.safe_load(REVIEW), version=result.playbook.version,
                                      account_id="acme", trigger={"type": "manual"}),
            id=run_id_for("review", "acme"), task_queue=s.queue, start_signal="deliver_event",
            start_signal_args=[Event(id="x0", type="account.churned", account_id="acme")])
        await s.env.sleep(timedelta(hours=1))
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:  # the bug: it went on
            for task in s.crm.list_tasks():
                await handle.signal("deliver_event", Event(id="d", type="task.completed", data={"task_id": task.id}))
        out = await handle.result()
    assert (out.outcome, out.reason) == ("exited", "event account.churned arrived")
    assert out.steps == {} and s.crm.list_tasks() == []


async def test_runs_cancel_records_the_run_cancelled_when_it_stopped(tmp_path: Path) -> None:
    """The path of ``csops runs cancel`` and ``POST /v1/runs/ID/cancel``: the store's record ends."""
    store = Store(f"sqlite:///{tmp_path}/store.db")
    try:
        async with stack(tmp_path) as s:
            await monday(s)
            handle = await s.start(REVIEW)
            await store.add_run(run_id=handle.id, temporal_run_id=handle.result_run_id or "", playbook="review",
                                version="v", account_id="acme", started_at=await s.env.get_current_time())
            await s.env.sleep(timedelta(days=4, hours=3))
            workflows = TemporalWorkflows(lambda: _client(s))
            at = await s.env.get_current_time()
            said = await cancel_run(store, workflows, handle.id, "handled by phone")
            await s.env.sleep(timedelta(hours=1))
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:  # the bug: it waits on
                [task] = s.crm.list_tasks()
                await handle.signal("deliver_event", Event(id="d", type="task.completed", data={"task_id": task.id}))
            await handle.result()
            record = await workflows.refresh(store, handle.id)
    finally:
        store.close()
    assert said.status == "cancelling"
    assert record is not None and (record.status, record.reason) == ("cancelled", "cancelled: handled by phone")
    assert record.ended_at is not None and (record.ended_at - at).total_seconds() < 60
    assert [(t.status, t.reason) for t in s.crm.list_tasks()] == [("cancelled", "run cancelled: handled by phone")]


async def _client(s: Stack) -> Any:
    return s.env.client
