"""A run on a configured calendar counts every business day on it: ``due``, ``escalate.after``,
``business_days(n)`` in ``due_on`` and in a wait, in the calendar's time zone.

Runs start on a Monday 09:00 UTC (see test_playbook_run.py), with the calendar a run gets from
``csops.yaml`` (``RunInput.calendar``). The expected days are worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from temporalio.client import WorkflowHandle

from engine.payloads.runtypes import RULES, RunInput, RunOutcome
from engine.runtime.workflow import PlaybookRun
from tests.workflows.harness import Stack, record_history, stack
from tests.workflows.test_playbook_run import monday

pytestmark = pytest.mark.asyncio

BERLIN = ZoneInfo("Europe/Berlin")
PLAYBOOK = """\
playbook: calendar-run
title: Calendar run
triggers: [manual: {}]
steps:
  - id: kickoff
    task:
      title: "Kick off {{ account.name }}"
      due: 5 business days
      escalate:
        - after: 3 business days
          notify: owner.manager
          text: "{{ account.name }}: kickoff still open"
  - id: same-day
    task:
      title: "Same day for {{ account.name }}"
      due_on: today + business_days(5)
  - id: wait-four
    wait: { until: today + business_days(4) }
"""


async def start_run(s: Stack, calendar: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    return await s.env.client.start_workflow(
        PlaybookRun.run, RunInput(rules=RULES, playbook=yaml.safe_load(PLAYBOOK), version="1", account_id="acme",
                                  trigger={"type": "manual"}, calendar=calendar),
        id=f"calendar-run-{calendar['timezone']}", task_queue=s.queue)


def dues(s: Stack) -> dict[str, date | None]:
    return {t.title.split(" ")[0]: t.due for t in s.crm.list_tasks()}


async def test_a_berlin_sunday_to_thursday_calendar_with_a_holiday_counts_every_business_day(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        start = await monday(s)
        day = start.date()
        holiday = day + timedelta(days=2)  # the Wednesday
        handle = await start_run(s, {"timezone": "Europe/Berlin", "workdays": [6, 0, 1, 2, 3],
                                     "holidays": [holiday.isoformat()]})
        out: RunOutcome = await handle.result()
        await record_history(handle, "calendar-berlin-sun-thu")
    assert out.outcome == "completed", out
    # Workdays after Monday: Tue (+1), [Wed +2 holiday], Thu (+3), [Fri, Sat off], Sun (+6), Mon (+7), Tue (+8).
    assert dues(s) == {"Kick": day + timedelta(days=8), "Same": day + timedelta(days=8)}
    # The escalation after 3 business days: Sunday (+6), at the local time the task was created.
    local_start = start.astimezone(BERLIN)
    escalated = datetime.combine(day + timedelta(days=6), local_start.time(), tzinfo=BERLIN).astimezone(UTC)
    assert abs(datetime.fromisoformat(out.steps["kickoff/escalate/0"].at) - escalated) < timedelta(seconds=5)
    assert [(m.get("user_email"), m["text"]) for m in s.chat.messages()] == [
        ("maria@example.com", "Acme Corp: kickoff still open")]
    # today + business_days(4) is Monday (+7); a date means its midnight in Berlin.
    assert out.steps["wait-four"].result == datetime.combine(day + timedelta(days=7), time(0),
                                                             tzinfo=BERLIN).isoformat()


async def test_today_is_the_local_date_where_it_is_already_tomorrow(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        start = await monday(s) + timedelta(hours=11)
        await s.env.sleep(timedelta(hours=11))  # Monday 20:00 UTC is Tuesday 05:00 in Tokyo
        handle = await start_run(s, {"timezone": "Asia/Tokyo", "workdays": [0, 1, 2, 3, 4], "holidays": []})
        out: RunOutcome = await handle.result()
    assert out.outcome == "completed", out
    tuesday = start.date() + timedelta(days=1)
    # Five workdays after Tuesday in Tokyo: Wed, Thu, Fri, Mon, Tue; from the UTC Monday it would be Monday.
    assert dues(s) == {"Kick": tuesday + timedelta(days=7), "Same": tuesday + timedelta(days=7)}
    # Four workdays after Tuesday is Monday, midnight in Tokyo: Sunday 15:00 UTC.
    assert out.steps["wait-four"].result == datetime.combine(tuesday + timedelta(days=6), time(0),
                                                             tzinfo=ZoneInfo("Asia/Tokyo")).isoformat()
