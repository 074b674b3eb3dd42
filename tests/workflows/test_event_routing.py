"""Events through the Ingestor into real PlaybookRun workflows on the time-skipping server.

An ingested event starts a run through engine.runtime.starter.begin_run (recorded in the store), reaches
a run waiting in wait_for through the ``deliver_event`` signal, completes a task a run waits on
(its escalations never fire), and a run Temporal has finished is marked ended in the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.payloads.runtypes import RunOutcome
from engine.runtime.temporal import temporal_signaller, temporal_starter
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from tests.workflows.harness import Stack, stack

RISK = """\
playbook: risk
title: Risk
triggers: [{health_drop: {below: 50}}]
steps:
  - id: first-use
    wait_for:
      event: usage.feature_used
      where: event.data.feature == 'dashboards'
      timeout: 7d
  - id: thanks
    when: steps['first-use'].status == 'received'
    note: {text: "Used {{ steps['first-use'].result.data.feature }} after a drop to {{ trigger.score }}"}
"""

KICKOFF = """\
playbook: kickoff
title: Kickoff
triggers: [{manual: {}}]
steps:
  - id: kickoff
    task:
      title: "Kick off {{ account.name }}"
      wait_for_completion: true
      escalate:
        - after: 3 business days
          notify: owner.manager
          text: "{{ account.name }}: kickoff still open"
  - id: done
    note: {text: "kickoff done"}
"""


def compiled(text: str) -> Playbook:
    result = check_text(text, "<test>")
    assert result.playbook is not None, [p.message for p in result.problems]
    return result.playbook


def event(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": type_, "account_id": "acme", "occurred_at": datetime.now(UTC).isoformat(),
            "data": data}


@asynccontextmanager
async def pipeline(s: Stack, tmp_path: Path, *books: Playbook) -> AsyncIterator[tuple[Ingestor, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    client = s.env.client
    try:
        yield Ingestor(store=store, crm=s.crm, playbooks=lambda: {b.id: b for b in books},
                       start=temporal_starter(client, s.queue, calendar=Calendar()),
                       signal_run=temporal_signaller(client)), store
    finally:
        store.close()


async def test_an_ingested_event_starts_a_run_and_a_later_one_reaches_its_wait_for(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, pipeline(s, tmp_path, compiled(RISK)) as (ingest, store):
        [res] = await ingest.ingest([event("h1", "health.updated", {"score": 40})], process=True)
        assert res.decisions == ("risk: started (started): started pb:risk:acme:once",)
        run = await store.get_run("pb:risk:acme:once")
        assert run is not None and run.status == "running" and run.temporal_run_id
        await s.env.sleep(timedelta(days=1))  # the run is now in its wait_for
        other = await ingest.ingest([event("u1", "usage.feature_used", {"feature": "reports"}),
                                     event("u2", "usage.feature_used", {"feature": "dashboards"})], process=True)
        assert [r.notes for r in other] == [("delivered to pb:risk:acme:once",)] * 2
        out = await s.env.client.get_workflow_handle(run.run_id, result_type=RunOutcome).result()
    assert out.outcome == "completed"
    assert out.steps["first-use"].status == "received" and out.steps["first-use"].result["id"] == "u2"
    assert [n.text for n in s.crm.list_notes("acme")] == ["Used dashboards after a drop to 40"]


async def test_task_completed_ends_the_task_wait_and_stops_escalations(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, pipeline(s, tmp_path) as (ingest, store):
        handle = await s.start(KICKOFF)
        await store.add_run(run_id=handle.id, temporal_run_id=handle.result_run_id or "", playbook="kickoff",
                            version="v", account_id="acme", started_at=datetime.now(UTC))
        # Half a day, not one: the run polls the CRM for the task every day, and the time-skipping
        # server wedges the run for good when a signal's workflow task cancels a timer that fires
        # meanwhile (sdk-java #2606, #3088); a signal sent on the day mark can do just that.
        await s.env.sleep(timedelta(hours=12))
        [task] = s.crm.list_tasks()
        [res] = await ingest.ingest([event("t1", "task.completed", {"task_id": task.id})], process=True)
        assert res.notes == (f"delivered to {handle.id}",)
        out = await handle.result()
        assert out.outcome == "completed" and "kickoff/escalate/0" not in out.steps
        assert s.chat.messages() == [] and [n.text for n in s.crm.list_notes("acme")] == ["kickoff done"]
        assert s.crm.list_tasks()[0].status == "completed"  # the event said so: the run completed it in the CRM
        # The run has finished but the store does not know yet: the next event finds out.
        [res] = await ingest.ingest([event("x1", "email.replied", {})], process=True)
        assert res.notes == ()
        ended = await store.get_run(handle.id)
        assert ended is not None and (ended.status, ended.ended_at is not None) == ("completed", True)
