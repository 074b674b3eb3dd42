"""The performance report against a hand-counted scenario on the time-skipping server.

Three runs of one playbook (acme, beta, gamma), all real: the worker, the SQL CRM, the outboxes,
the store, the ingestor delivering events. Hand-counted:

- acme: its task is completed from the task inbox two hours in (on time); every step on schedule;
  the run completes. An email to acme is replied to during the run.
- beta: the mail server refuses beta's contact 12 times, so the email goes out ~24 minutes late
  (one late step); the task is never done: escalations at 3 days (level 1) and 6 days (level 2);
  the run completes with the task open and overdue. An email.bounced event arrives for beta.
- gamma: the task escalates at 3 days (level 1); at 4 days the account renews, an event wakes the
  run and it exits by its goal (exit criteria), closing its task.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Contact, OutgoingEmail, RetryableError
from connectors.outbox import EmailOutbox
from engine.language.validate import check_text
from engine.reports import complete_task, list_tasks, playbook_report, refresh_open_runs
from engine.runtime.runrecord import refresh
from engine.runtime.starter import begin_run
from engine.runtime.temporal import temporal_signaller
from engine.triggers.ingest import Ingestor
from tests.workflows.harness import Stack, stack
from tests.workflows.test_playbook_run import monday

pytestmark = pytest.mark.asyncio

PLAYBOOK = """\
playbook: perf
title: Performance scenario
triggers: [{manual: {}}]
exit:
  when: account.renewal_status == 'renewed'
  close_open_tasks: true
steps:
  - id: call
    task:
      title: "Call {{ account.name }}"
      due: 2d
      escalate:
        - after: 3d
          notify: owner.manager
        - after: 6d
          notify: owner.manager
  - id: pause
    wait: 1d
  - id: smb-only
    when: account.segment == 'smb'
    note: {text: "smb"}
  - id: mail
    email: {to: primary_contact, subject: "Hello", body: "Hi {{ contact.first_name }}"}
  - id: tell
    alert: {to: ["#cs-team"], text: "{{ account.name }} mailed"}
  - id: settle
    wait: 10d
  - id: wrap
    note: {text: "done"}
"""


class FlakyMail:
    """The outbox, but beta's contact is refused (as a busy server would) the first 12 times."""

    def __init__(self, outbox: EmailOutbox) -> None:
        self.outbox, self.refused = outbox, 0

    async def send(self, message: OutgoingEmail, idempotency_key: str) -> str:
        if "bo@beta.example" in message.to and self.refused < 12:
            self.refused += 1
            raise RetryableError("451 try again later")
        return await self.outbox.send(message, idempotency_key)


async def start_all(s: Stack) -> tuple[Any, datetime]:
    for name in ("beta", "gamma"):
        s.crm.add_account(await s.crm_account_copy(name))
        s.crm.add_contact(Contact(id=f"c-{name}", account_id=name, email=f"bo@{name}.example", first_name="Bo",
                                  primary=True))
    pb = check_text(PLAYBOOK).playbook
    assert pb is not None and s.store is not None
    t0 = await monday(s)
    for account in ("acme", "beta", "gamma"):
        outcome, run_id, temporal_id = await begin_run(s.env.client, pb, account_id=account, task_queue=s.queue)
        assert outcome == "started"
        await s.store.add_run(run_id=run_id, temporal_run_id=temporal_id, playbook=pb.id, version=pb.version,
                              account_id=account, started_at=await s.env.get_current_time())
    return pb, t0


async def sleep_until(s: Stack, moment: datetime) -> None:
    await s.env.sleep(moment - await s.env.get_current_time())


async def test_report_figures_match_the_hand_count(tmp_path: Path) -> None:
    outbox = EmailOutbox(tmp_path / "mail-flaky")
    async with stack(tmp_path, mailer=FlakyMail(outbox)) as s:
        store = s.store
        assert store is not None
        ingestor = Ingestor(store=store, crm=s.crm, playbooks=dict, start=_no_start,
                            signal_run=temporal_signaller(s.env.client))

        async def sync() -> None:
            _count, problems = await refresh_open_runs(store, lambda r: refresh(store, s.env.client, r))
            assert problems == []

        pb, t0 = await start_all(s)
        await sleep_until(s, t0 + timedelta(hours=2))
        await sync()
        now = await s.env.get_current_time()
        inbox = await list_tasks(store, today=now.date(), owner="carl@example.com")
        assert sorted(t["account_id"] for t in inbox) == ["acme", "beta", "gamma"]
        acme_task = next(t["task_id"] for t in inbox if t["account_id"] == "acme")
        done = await complete_task(store, acme_task, crm=s.crm, now=now,
                                   ingest=lambda evs: ingestor.ingest(evs, process=True))
        assert done.how == "event"
        await sleep_until(s, t0 + timedelta(days=2, hours=12))
        for event_id, kind, account in (("r1", "email.replied", "acme"), ("b1", "email.bounced", "beta")):
            await store.add_event(_Event(id=event_id, type=kind, account_id=account,
                                         occurred_at=await s.env.get_current_time()))
        await sleep_until(s, t0 + timedelta(days=4, hours=5))
        gamma = await s.crm.get_account("gamma")
        assert gamma is not None
        s.crm.add_account(dataclasses.replace(gamma, renewal_status="renewed"))
        [result] = await ingestor.ingest([{
            "id": "upd-1", "type": "account.updated", "account_id": "gamma",
            "occurred_at": (await s.env.get_current_time()).isoformat(),
            "data": {"fields": {"renewal_status": "renewed"}}}], process=True)
        assert (result.status, result.notes) == ("accepted", ("delivered to pb:perf:gamma:once",))
        await sleep_until(s, t0 + timedelta(days=12, hours=3))
        await sync()
        today = (await s.env.get_current_time()).date()
        report = await playbook_report(store, since=t0 - timedelta(days=1), today=today)
        tasks = {t.account_id: t for t in s.crm.list_tasks()}
    [book] = report["playbooks"]
    [v] = book["versions"]
    assert (book["playbook"], v["version"]) == ("perf", pb.version)
    assert v["runs"] == {"started": 3, "running": 0, "completed": 2, "exited": 1, "goal": 1, "cancelled": 0,
                         "failed": 0}
    assert v["goal_conversion"] == 0.3333
    assert v["median_time_to_goal_s"] == pytest.approx(4 * 86400 + 5 * 3600, abs=120)  # gamma: exited at 4d 5h
    steps = {x["step"]: x for x in v["steps"]}
    figures = {k: (x["reached"], x["on_schedule"], x["late"], x["skipped"], x["failed"], x["execution_rate"])
               for k, x in steps.items()}
    assert figures == {
        "call": (3, 3, 0, 0, 0, 1.0), "pause": (3, 3, 0, 0, 0, 1.0), "smb-only": (3, 0, 0, 3, 0, None),
        "mail": (3, 2, 1, 0, 0, 0.6667), "tell": (3, 3, 0, 0, 0, 1.0), "settle": (2, 2, 0, 0, 0, 1.0),
        "wrap": (2, 2, 0, 0, 0, 1.0)}
    assert v["tasks"] == {"created": 3, "completed": 1, "completed_on_time": 1, "overdue": 1, "closed_by_exit": 1,
                          "open": 1, "escalated": {"1": 2, "2": 1}}
    assert v["emails"] == {"sent": 3, "suppressed": 0, "capped": 0, "bounced": 1, "replied": 1}
    assert v["alerts"] == {"sent": 3}
    # The CRM agrees: acme's completed (once), beta's open, gamma's closed because the run exited.
    assert {k: t.status for k, t in tasks.items()} == {"acme": "completed", "beta": "open", "gamma": "cancelled"}


@dataclasses.dataclass(frozen=True)
class _Event:
    id: str
    type: str
    account_id: str
    occurred_at: datetime
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


async def _no_start(playbook: Any, decision: Any) -> tuple[str, str]:
    raise AssertionError("nothing should start")


