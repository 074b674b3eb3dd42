"""``csops simulate``: how the run starts (the triggering event), the playbooks it starts, the calendar,
and what a failure prints (issue 10, item 8)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.sim.simcalendar import layered
from engine.sim.simplaybooks import load_playbook
from engine.sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
CSOPS = str(Path(sys.executable).parent / "csops")

ACCOUNT: dict[str, Any] = {
    "account": {"id": "northwind", "name": "Northwind Traders", "segment": "strategic", "owner": "u-ben",
                "arr": 180000, "health_score": 77},
    "contacts": [{"id": "c-nw-1", "email": "li.wei@northwind.example", "first_name": "Li", "primary": True}],
    "users": [{"id": "u-ben", "email": "ben@yourco.example", "name": "Ben Ito", "manager_id": "u-ana"},
              {"id": "u-ana", "email": "ana@yourco.example", "name": "Ana Silva"}],
}

SCORE = """\
playbook: score-alert
title: Score alert
triggers:
  - event: { type: health.updated, where: "event.data.score < 50" }
steps:
  - id: tell
    alert:
      to: ["#cs-risk"]
      text: >-
        {{ account.name }} scored {{ trigger.event.data.score }} ({{ trigger.type }}, now {{ account.health.score }})
"""

PARENT = """\
playbook: parent
title: Parent
triggers:
  - manual: {}
steps:
  - id: hand-over
    start_playbook: child
  - id: after
    note: { text: handed over }
"""

CHILD = """\
playbook: child
title: Child
triggers:
  - manual: {}
steps:
  - id: call
    task:
      assign: owner
      title: "Call {{ account.name }} ({{ trigger.type }})"
      due: 2 business days
  - id: wait-a-day
    wait: 1d
  - id: ping
    alert: { to: ["#cs"], text: "called {{ account.name }}?" }
"""

BROKEN = """\
playbook: broken
title: Broken
triggers:
  - manual: {}
steps:
  - id: tell
    alert:
      to: ["#cs"]
      text: "Plan {{ account.fields.plan.name }} for {{ account.name }}"
"""


def csops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CSOPS, "simulate", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A project: csops.yaml naming my-playbooks/ as the playbooks folder, and an account file."""
    (tmp_path / "my-playbooks").mkdir()
    (tmp_path / "csops.yaml").write_text("playbooks: my-playbooks\n")
    (tmp_path / "northwind.yaml").write_text(yaml.safe_dump(ACCOUNT))
    for name, text in (("score-alert", SCORE), ("parent", PARENT), ("child", CHILD), ("broken", BROKEN)):
        (tmp_path / "my-playbooks" / f"{name}.yaml").write_text(text)
    return tmp_path


def entries(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["entries"])


def test_the_trigger_event_is_what_the_run_sees_as_trigger_event(folder: Path) -> None:
    done = csops(folder, "score-alert", "--account", "northwind.yaml", "--days", "1", "--format", "json",
                 "--trigger-event", '{"type": "health.updated", "data": {"score": 42}}')
    data = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    alert = next(e for e in data["entries"] if e["action"] == "alert")
    # As an event start: the score is applied to the account first, then the trigger's where sees `event`.
    assert alert["text"] == "Northwind Traders scored 42 (event, now 42)"
    assert data["trigger"]["event"]["data"] == {"score": 42}
    assert data["matcher"].startswith("start pb:score-alert:northwind:once: event health.updated where")


def test_an_event_the_where_refuses_is_simulated_anyway_and_said(folder: Path) -> None:
    done = csops(folder, "score-alert", "--account", "northwind.yaml", "--days", "1",
                 "--trigger-event", '{"type": "health.updated", "data": {"score": 80}}')
    assert done.returncode == 0, done.stderr
    assert "where event.data.score < 50 is false (simulated anyway)" in done.stdout
    assert "Northwind Traders scored 80" in done.stdout


def test_the_quickstart_playbook_simulates_with_its_event(tmp_path: Path) -> None:
    """docs/quickstart.md section 3's playbook, in the folder its csops.yaml names, run by id."""
    quickstart = (ROOT / "docs/quickstart.md").read_text()
    found = re.search(r"`my-playbooks/overdue-invoice.yaml`.*?```yaml\n(.*?)```", quickstart, re.S)
    assert found is not None
    (tmp_path / "my-playbooks").mkdir()
    (tmp_path / "my-playbooks/overdue-invoice.yaml").write_text(found.group(1))
    (tmp_path / "my-playbooks/coverage.yaml").write_text((ROOT / "playbooks/coverage.yaml").read_text())
    (tmp_path / "csops.yaml").write_text("playbooks: my-playbooks\n")
    (tmp_path / "northwind.yaml").write_text(yaml.safe_dump(ACCOUNT))
    done = csops(tmp_path, "overdue-invoice", "--account", "northwind.yaml", "--start", "2030-01-07",
                 "--trigger-event", '{"type": "billing.invoice_overdue", "data": {"invoice": "INV-1042", '
                                    '"amount": 12500}}', "--format", "json")
    got = [(e["day"], e["step"], e["action"], e["to"], e["text"], e["detail"].get("notes", ""))
           for e in entries(done) if e["action"] in ("alert", "task")]
    assert got == [
        (0, "tell-owner", "alert", "ben@yourco.example",
         "Northwind Traders has an overdue invoice of 12500. A task is in your CRM.", ""),
        (0, "call-customer", "task", "ben@yourco.example", "Overdue invoice: call Northwind Traders",
         "Invoice INV-1042 (12500) is overdue."),
        (3, "call-customer/escalate/0", "alert", "ana@yourco.example",
         "Northwind Traders: overdue invoice call still open (Ben Ito)", ""),
        (14, "tell-manager", "alert", "ana@yourco.example",
         "Northwind Traders has not paid invoice INV-1042 after 14 days.", ""),
    ]
    assert "Traceback" not in done.stderr
    # Without the event, the where cannot be evaluated: one line says what to pass, exit 2.
    bare = csops(tmp_path, "overdue-invoice", "--account", "northwind.yaml", "--start", "2030-01-07")
    assert bare.returncode == 2
    assert bare.stdout == "" and len(bare.stderr.splitlines()) == 1
    assert bare.stderr.startswith("csops simulate: where event.data.amount >= 1000 could not be evaluated for the "
                                  "default billing.invoice_overdue event {}")
    assert "--trigger-event" in bare.stderr


def test_a_started_playbook_is_simulated_and_its_entries_are_marked(folder: Path) -> None:
    done = csops(folder, "parent", "--account", "northwind.yaml", "--start", "2030-01-07", "--days", "3",
                 "--format", "json")
    got = [(e["day"], e["step"], e["action"], e["playbook"], e["text"]) for e in entries(done)
           if e["action"] != "end"]
    assert sorted(got) == sorted([
        (0, "hand-over", "start-playbook", "", "child"),
        (0, "child:call", "task", "child", "Call Northwind Traders (start_playbook)"),
        (0, "after", "note", "", "handed over"),
        (1, "child:wait-a-day", "wait", "child", "until 2030-01-08 09:00"),
        (1, "child:ping", "alert", "child", "called Northwind Traders?"),
    ])
    ends = [(e["step"], e["text"]) for e in json.loads(done.stdout)["entries"] if e["action"] == "end"]
    assert ends == [("", "completed"), ("child", "completed")]
    start = next(e for e in json.loads(done.stdout)["entries"] if e["action"] == "start-playbook")
    assert start["detail"] == {"outcome": "started", "run_id": "pb:child:northwind:once"}


@pytest.mark.parametrize(("config", "calendar", "due"), [
    ("", None, "2030-01-09"),                                   # Monday + 2 business days
    ("", {"holidays": ["2030-01-08"]}, "2030-01-10"),           # --calendar: the Tuesday is a holiday
    ("calendar: {holidays: ['2030-01-08', '2030-01-09']}\n", None, "2030-01-11"),  # csops.yaml's calendar
    ("calendar: {holidays: ['2030-01-08', '2030-01-09']}\n", {"holidays": ["2030-01-09"]}, "2030-01-10"),  # over it
    ("", {"workdays": ["mon", "wed", "fri"]}, "2030-01-11"),
])
def test_the_calendar_comes_from_csops_yaml_and_calendar_file(folder: Path, config: str,
                                                              calendar: dict[str, Any] | None, due: str) -> None:
    (folder / "csops.yaml").write_text("playbooks: my-playbooks\n" + config)
    args = ["child", "--account", "northwind.yaml", "--start", "2030-01-07", "--days", "1", "--format", "json"]
    if calendar is not None:
        (folder / "cal.json").write_text(json.dumps(calendar))
        args += ["--calendar", "cal.json"]
    task = next(e for e in entries(csops(folder, *args)) if e["action"] == "task")
    assert task["detail"]["due"] == due


def test_a_failing_step_prints_one_line_and_exits_1(folder: Path) -> None:
    done = csops(folder, "broken", "--account", "northwind.yaml", "--days", "1")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "csops simulate: step tell failed on day 0: ExpressionError: 'dict object' has no attribute 'plan' "
        "(in alert.text: {{ account.fields.plan.name }})"]
    assert "tell    failed" in done.stdout  # the timeline is still printed
    debug = csops(folder, "broken", "--account", "northwind.yaml", "--days", "1", "--debug")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr


@pytest.mark.parametrize(("args", "status", "message"), [
    (["nonesuch"], 2, "csops simulate: no playbook nonesuch: not a file, and no nonesuch.yaml in my-playbooks/"),
    (["bad.yaml"], 2, "csops simulate: bad.yaml is not a valid playbook: bad.yaml:1:1:"),
    (["child", "--account", "nobody.yaml"], 2, "csops simulate: nobody.yaml: no such account file"),
    (["child", "--account", "badacct.yaml"], 2, "csops simulate: account: unknown field(s) helth"),
    (["score-alert", "--trigger-event", '{"type": "health.updated", "data": {"score": 42}'], 2,
     "csops simulate: --trigger-event: not valid JSON at line 1 column 49: Expecting ',' delimiter"),
    (["score-alert", "--trigger-event", '{"type": "health.updated", "data": {"score": "x"}}'], 2,
     "csops simulate: the trigger event: data.score: must be a number 0-100"),
    (["score-alert", "--trigger-event", '{"type": "billing.paid"}'], 2,
     "csops simulate: no trigger of score-alert starts on a billing.paid event (it starts on: health.updated "
     "events)"),
    (["child", "--calendar", "badcal.yaml"], 2,
     "  badcal.yaml:2:17: workdays: 'mon-fri' is not a day (calendar-value)"),
    (["broken"], 1, "csops simulate: step tell failed on day 0:"),
])
def test_each_failure_has_its_exit_status_and_no_traceback(folder: Path, args: list[str], status: int,
                                                           message: str) -> None:
    (folder / "bad.yaml").write_text("playbok: x\n")
    (folder / "badacct.yaml").write_text("account: {id: x, helth: 3}\n")
    (folder / "badcal.yaml").write_text("timezone: UTC\nworkdays: [mon, mon-fri]\n")
    if "--account" not in args:
        args = [*args, "--account", "northwind.yaml"]
    done = csops(folder, *args, "--days", "1")
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


async def test_from_python_the_trigger_event_calendar_and_playbooks_are_arguments(tmp_path: Path) -> None:
    for name, text in (("parent", PARENT), ("child", CHILD)):
        (tmp_path / f"{name}.yaml").write_text(text)
    playbook, registry = load_playbook(str(tmp_path / "parent.yaml"), str(tmp_path))
    assert sorted(registry) == ["child", "parent"]
    from datetime import UTC, datetime
    timeline = await simulate(playbook, ACCOUNT["account"], users=ACCOUNT["users"], days=1, playbooks=registry,
                              start=datetime(2030, 1, 7, 9, tzinfo=UTC),
                              calendar=layered({"holidays": ["2030-01-08", "2030-01-09"]}))
    task = next(e for e in timeline if e.action == "task")
    assert (task.step, task.playbook, task.detail["due"]) == ("child:call", "child", "2030-01-11")
