"""PlaybookRun on the time-skipping server: every step kind, escalation timing, exit criteria,
cancel, dedupe and pinning, asserted as a timeline (which side effect on which simulated day).

Every test starts its runs on a Monday 09:00 UTC so that business days fall on known dates.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import ActivityEnvironment

from engine.payloads.runtypes import Event, RunOutcome, StepOutcome, TaskInput
from engine.runtime.workflow import PlaybookRun
from tests.workflows.harness import Stack, record_history, stack

pytestmark = pytest.mark.asyncio


async def monday(s: Stack) -> datetime:
    """Skip the server's clock to the next Monday 09:00 UTC and return it."""
    now = await s.env.get_current_time()
    target = (now + timedelta(days=(7 - now.weekday()) % 7 or 7)).replace(hour=9, minute=0, second=0, microsecond=0)
    await s.env.sleep(target - now)
    return target


async def renewal_run(s: Stack) -> tuple[datetime, WorkflowHandle[Any, Any]]:
    """A renewal run for acme, renewing 120 days after the Monday it starts on."""
    start = await monday(s)
    await s.crm_renewal(start.date() + timedelta(days=120))
    return start, await s.start(RENEWAL)


def days(out: RunOutcome, start: datetime) -> dict[str, float]:
    """Each step's finishing time as days after ``start`` (rounded to the hour)."""
    return {sid: round((datetime.fromisoformat(r.at) - start).total_seconds() / 86400, 2)
            for sid, r in out.steps.items()}


RENEWAL = """\
playbook: renewal
title: Renewal
triggers: [{contract_milestone: {field: renewal_date, days_before: 120}}]
exit:
  on_events: [account.churned]
  close_open_tasks: true
steps:
  - id: kickoff
    task:
      title: "Kick off the renewal of {{ account.name }}"
      due: 5 business days
      priority: high
      escalate:
        - after: 3 business days
          notify: owner.manager
          text: "{{ account.name }}: renewal kickoff still open"
        - after: 7 business days
          reassign: owner.manager
  - id: wait-90
    wait: { until: account.renewal_date - days(90) }
  - id: route
    branch:
      cases:
        - when: account.health.score < 50
          steps:
            - id: risk-alert
              alert: { to: [owner, "#cs-risk"], text: "{{ account.name }} renews at health {{ account.health.score }}" }
      default:
        - id: renewal-email
          email:
            to: primary_contact
            subject: "Your renewal on {{ account.renewal_date | date }}"
            body: "Hi {{ contact.first_name }}, {{ account.owner.name }} here."
"""


async def test_renewal_timeline_with_escalations(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        start, handle = await renewal_run(s)
        out = await handle.result()
        await record_history(handle, "renewal-escalations")
    assert out.outcome == "completed"
    timeline = days(out, start)
    assert timeline["kickoff"] == 0
    assert timeline["kickoff/escalate/0"] == 3  # Thursday: 3 business days after Monday
    assert timeline["kickoff/escalate/1"] == 9  # next Wednesday: 7 business days
    # renewal - 90 days = day 30, at midnight UTC (the calendar's time zone): 09:00 → 00:00
    assert timeline["wait-90"] == pytest.approx(30 - 9 / 24, abs=0.01)
    assert timeline["route"] == timeline["renewal-email"] == timeline["wait-90"]
    assert "risk-alert" not in out.steps
    task = s.crm.list_tasks()[0]
    assert (task.title, task.priority, task.assignee_id, task.due) == (
        "Kick off the renewal of Acme Corp", "high", "u-mgr", start.date() + timedelta(days=7))
    assert [(m.get("user_email"), m["text"]) for m in s.chat.messages()] == [
        ("maria@example.com", "Acme Corp: renewal kickoff still open")]
    [mail] = s.mail.messages()
    renewal = (start.date() + timedelta(days=120)).strftime("%B %-d, %Y")
    assert (mail["To"], mail["Subject"]) == ("pat@acme.example", f"Your renewal on {renewal}")
    assert "Carl CSM here" in mail.get_content()


async def test_risk_branch_when_health_is_low(tmp_path: Path) -> None:
    async with stack(tmp_path, health=35) as s:
        _start, handle = await renewal_run(s)
        out = await handle.result()
    assert out.steps["route"].result == 0 and "renewal-email" not in out.steps
    alerts = [(m.get("channel") or m.get("user_email"), m["text"]) for m in s.chat.messages()]
    assert ("cs-risk", "Acme Corp renews at health 35") in alerts
    assert ("carl@example.com", "Acme Corp renews at health 35") in alerts
    assert s.mail.messages() == []


async def test_completed_task_event_stops_escalations(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        _start, handle = await renewal_run(s)
        await s.env.sleep(timedelta(days=1))
        [task] = s.crm.list_tasks()
        s.crm.complete_task(task.id)
        await handle.signal("deliver_event", Event(id="e1", type="task.completed", account_id="acme",
                                                   data={"task_id": task.id}))
        out = await handle.result()
    assert "kickoff/escalate/0" not in out.steps and "kickoff/escalate/1" not in out.steps
    assert s.chat.messages() == []
    assert s.crm.list_tasks()[0].assignee_id == "u-csm"


async def test_escalation_polls_the_crm_when_no_event_comes(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        _start, handle = await renewal_run(s)
        await s.env.sleep(timedelta(days=2))
        s.crm.complete_task(s.crm.list_tasks()[0].id)  # completed in the CRM; nobody tells the run
        out = await handle.result()
    assert "kickoff/escalate/0" not in out.steps
    assert s.chat.messages() == []


WAIT_FOR = """\
playbook: onboarding
title: Onboarding
triggers: [{manual: {}}]
steps:
  - id: welcome
    email: {to: primary_contact, subject: "Welcome {{ contact.first_name }}", body: "Hello"}
  - id: first-use
    wait_for:
      event: usage.feature_used
      where: event.data.feature == 'dashboards'
      timeout: 7d
      on_timeout:
        - id: nudge
          email: {to: primary_contact, subject: "Try dashboards", body: "Nudge", category: marketing}
  - id: thanks
    when: steps.first_use.status == 'received'
    note: {text: "Used {{ steps['first-use'].result.data.feature }}"}
"""


async def test_wait_for_receives_matching_event(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        start = await monday(s)
        handle = await s.start(WAIT_FOR)
        await s.env.sleep(timedelta(days=2))
        await handle.signal("deliver_event", Event(id="e1", type="usage.feature_used", data={"feature": "reports"}))
        await s.env.sleep(timedelta(days=1))
        await handle.signal("deliver_event", Event(id="e2", type="usage.feature_used", data={"feature": "dashboards"}))
        out = await handle.result()
        await record_history(handle, "wait-for-received")
    timeline = days(out, start)
    assert out.steps["first-use"].status == "received" and out.steps["first-use"].result["id"] == "e2"
    assert timeline["first-use"] == pytest.approx(3, abs=0.01)
    assert out.steps["thanks"].status == "done" and "nudge" not in out.steps
    assert [n.text for n in s.crm.list_notes("acme")] == ["Used dashboards"]
    assert [m["Subject"] for m in s.mail.messages()] == ["Welcome Pat"]


async def test_wait_for_times_out_and_runs_on_timeout(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        start = await monday(s)
        out = await (await s.start(WAIT_FOR)).result()
    timeline = days(out, start)
    assert out.steps["first-use"].status == "timed_out"
    assert timeline["nudge"] == pytest.approx(7, abs=0.01)
    assert out.steps["thanks"].status == "skipped"
    assert sorted(m["Subject"] for m in s.mail.messages()) == ["Try dashboards", "Welcome Pat"]


async def test_exit_event_ends_the_run_and_closes_its_tasks(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        _start, handle = await renewal_run(s)
        await s.env.sleep(timedelta(days=10))
        assert (await handle.query(PlaybookRun.status)).current_step == "wait-90"
        await handle.signal("deliver_event", Event(id="e9", type="account.churned", account_id="acme"))
        out = await handle.result()
        await record_history(handle, "exit-on-event")
    assert (out.outcome, out.reason) == ("exited", "event account.churned arrived")
    assert "route" not in out.steps
    [task] = s.crm.list_tasks()  # closed, but not done: cancelled, with why
    assert (task.status, task.reason) == ("cancelled", "run exited: event account.churned arrived")


EXIT_WHEN = """\
playbook: save
title: Save play
triggers: [{manual: {}}]
exit:
  when: account.health.score >= 70
steps:
  - id: wait
    wait: 30d
  - id: late
    note: {text: "still at risk"}
"""


async def test_exit_criteria_checked_on_delivered_event(tmp_path: Path) -> None:
    async with stack(tmp_path, health=30) as s:
        start = await monday(s)
        handle = await s.start(EXIT_WHEN)
        await s.env.sleep(timedelta(days=4))
        await s.crm_health(75)
        await handle.signal("deliver_event", Event(id="h1", type="health.updated", data={"score": 75}))
        out = await handle.result()
    assert out.outcome == "exited" and out.reason.startswith("exit criteria met")
    assert "late" not in out.steps and s.crm.list_notes("acme") == []
    assert start  # the run ended on day 4, long before its 30-day wait


async def test_cancel_with_reason(tmp_path: Path) -> None:
    async with stack(tmp_path, health=30) as s:
        await monday(s)
        handle = await s.start(EXIT_WHEN)
        await s.env.sleep(timedelta(days=1))
        await handle.signal("cancel", "account moved to another team")
        out = await handle.result()
    assert (out.outcome, out.reason) == ("cancelled", "account moved to another team")


async def test_same_run_id_never_makes_a_second_run(tmp_path: Path) -> None:
    async with stack(tmp_path, health=30) as s:
        await monday(s)
        first = await s.start(EXIT_WHEN, occurrence="2027-03-05")
        with pytest.raises(WorkflowAlreadyStartedError):
            await s.start(EXIT_WHEN, occurrence="2027-03-05")
        other = await s.start(EXIT_WHEN, occurrence="2028-03-05")
        assert first.id == "pb:save:acme:2027-03-05" and other.id != first.id
        await first.signal("cancel", "done")
        await other.signal("cancel", "done")
        await first.result()
        await other.result()


KINDS = """\
playbook: kinds
title: Every other step kind
owner: "#cs-ops-alerts"
triggers: [{manual: {}}]
steps:
  - id: big
    when: account.arr > 100000
    update: {account: {fields.tier: "gold", renewal_status: "in progress"}}
  - id: small
    when: account.arr < 1000
    note: {text: "never"}
  - id: log
    note: {text: "Tier {{ account.fields.tier }}, status {{ account.renewal_status }}"}
  - id: hook
    on_error: continue
    http: {url: "https://hooks.example.com/x"}
  - id: bill
    email: {to: "contacts:billing", subject: "Invoice for {{ contact.first_name }}", body: "x"}
  - id: stop
    exit: {outcome: success, reason: "done for {{ account.name }}"}
"""


async def test_update_note_when_on_error_and_exit(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await monday(s)
        handle = await s.start(KINDS)
        out = await handle.result()
        await record_history(handle, "step-kinds")
    assert (out.outcome, out.reason) == ("success", "done for Acme Corp")
    assert out.steps["small"].status == "skipped"
    assert [n.text for n in s.crm.list_notes("acme")] == ["Tier gold, status in progress"]
    assert out.steps["hook"].status == "failed" and "http connector" in str(out.steps["hook"].result)
    assert [m["To"] for m in s.mail.messages()] == ["bill@acme.example"]


async def test_failed_run_alerts_the_playbook_owner(tmp_path: Path) -> None:
    text = KINDS.replace("    on_error: continue\n", "")
    async with stack(tmp_path) as s:
        await monday(s)
        out = await (await s.start(text)).result()
    assert out.outcome == "failed" and "step hook failed" in out.reason
    [alert] = s.chat.messages()
    assert alert["channel"] == "cs-ops-alerts" and "Playbook kinds failed for account acme" in alert["text"]


async def test_runs_are_pinned_to_the_version_they_started_with(tmp_path: Path) -> None:
    v1 = EXIT_WHEN
    v2 = EXIT_WHEN.replace('still at risk', 'edited text')
    async with stack(tmp_path, health=30) as s:
        await monday(s)
        s.crm.add_account(await s.crm_account_copy("beta"))
        old = await s.start(v1)
        new = await s.start(v2, account_id="beta")
        old_out, new_out = await old.result(), await new.result()
    notes = {n.account_id: n.text for n in s.crm.list_notes("acme") + s.crm.list_notes("beta")}
    assert notes == {"acme": "still at risk", "beta": "edited text"}
    assert old_out.steps.keys() == new_out.steps.keys()


async def test_a_done_key_returns_the_recorded_result_without_calling_out(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        env = ActivityEnvironment()
        inp = TaskInput(key="pb:x:acme:once/kickoff", account_id="acme", assignee="owner", title="T")
        first = await env.run(s.activities.create_task, inp)
        second = await env.run(s.activities.create_task, inp)
        assert first == second and s.crm.count_tasks() == 1
        await s.ledger.record("pb:x:acme:once/other", {"task_id": "recorded"})
        third = await env.run(s.activities.create_task, TaskInput(key="pb:x:acme:once/other", account_id="acme",
                                                                   assignee="owner", title="T2"))
        assert third == StepOutcome(status="done", result={"task_id": "recorded"}) and s.crm.count_tasks() == 1


async def test_unknown_account_fails_clearly(tmp_path: Path) -> None:
    async with stack(tmp_path, health=30) as s:
        await monday(s)
        out = await (await s.start(EXIT_WHEN, account_id="nope")).result()
    assert out.outcome == "failed" and "account nope does not exist" in out.reason
