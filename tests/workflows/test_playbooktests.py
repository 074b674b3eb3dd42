"""``csops test``: the shipped playbooks' tests pass, and a wrong expectation fails with a readable diff."""

from __future__ import annotations

import io
from pathlib import Path

from engine.sim.playbooktest import load_test_file, run_tests

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
playbook: nudge
title: Nudge the owner
triggers:
  - manual: {}
steps:
  - id: ask
    task:
      assign: owner
      title: "Call {{ account.name }}"
      due: 2d
  - id: wait-a-week
    wait: 7d
  - id: remind
    alert:
      to: [owner, "#cs"]
      text: "Did you call {{ account.name }}?"
"""

TESTS = """\
playbook: nudge.yaml
account: { id: acme, name: Acme Corp, owner: u-carl }
users:
  - { id: u-carl, email: carl@example.com, name: Carl }
cases:
  - name: right
    expect:
      - { day: 0, step: ask, action: task, to: carl@example.com, text: Call Acme }
      - { day: 7, step: remind, action: alert, to: "#cs" }
    outcome: completed
  - name: wrong
    expect:
      - { day: 0, step: ask, action: task, to: carl@example.com }
      - { day: 6, step: remind, action: alert, to: "#cs" }
    absent:
      - { step: remind, to: carl@example.com }
    outcome: exited
"""


def test_every_shipped_playbook_has_tests_and_they_pass() -> None:
    playbooks = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yaml")
                       if not p.name.endswith(".test.yaml") and p.name != "coverage.yaml")
    tested = sorted(p.name.removesuffix(".test.yaml") for p in (ROOT / "playbooks").glob("*.test.yaml"))
    assert tested == playbooks
    out = io.StringIO()
    status = run_tests(str(ROOT / "playbooks"), out=out, timings=False)
    report = out.getvalue()
    assert status == 0, report
    cases = [line for line in report.splitlines() if line.startswith("  PASS") or line.startswith("  FAIL")]
    assert len(cases) >= 4 * 3 and all(line.startswith("  PASS") for line in cases), report
    assert report.splitlines()[-1] == f"{len(cases)} passed, 0 failed"


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    (tmp_path / "nudge.yaml").write_text(PLAYBOOK)
    (tmp_path / "nudge.test.yaml").write_text(TESTS)
    out = io.StringIO()
    status = run_tests(str(tmp_path), out=out, timings=False)
    assert status == 1
    assert out.getvalue() == f"""\
{tmp_path}/nudge.test.yaml
  PASS  right
  FAIL  wrong
        expected timeline (in this order) vs actual:
        --- expected
        +++ actual
        @@ -1,2 +1,3 @@
         day   0  ask  task  carl@example.com  Call Acme Corp
        -day   6  remind  alert  #cs  *
        +day   7  remind  alert  carl@example.com  Did you call Acme Corp?
        +day   7  remind  alert  #cs  Did you call Acme Corp?
        unexpected (absent: {{step: remind, to: carl@example.com}}): day   7  remind  alert  carl@example.com  Did you \
call Acme Corp?
        expected outcome exited, got completed (all steps done)
1 passed, 1 failed
"""


def test_a_bad_test_file_is_reported_with_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "nudge.yaml").write_text(PLAYBOOK)
    bad = TESTS.replace("    outcome: completed", "    outcom: completed").replace("day: 7,", "day: seven,")
    (tmp_path / "nudge.test.yaml").write_text(bad)
    problems = load_test_file(str(tmp_path / "nudge.test.yaml")).problems
    assert [(p.line, p.col, p.rule, p.message, p.hint) for p in problems] == [
        (9, 16, "test-type", "day: is a whole number of days", ""),
        (10, 5, "test-unknown-key", "unknown key outcom", 'did you mean "outcome"?'),
    ]
    out = io.StringIO()
    assert run_tests(str(tmp_path), out=out, timings=False) == 2
    assert f"{tmp_path}/nudge.test.yaml:10:5: [error] unknown key outcom (test-unknown-key)" in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "0 passed, 0 failed, 1 bad test file(s)"


OVERDUE = """\
playbook: overdue
title: Overdue invoice
triggers:
  - event: { type: billing.invoice_overdue, where: "event.data.amount >= 1000" }
steps:
  - id: call
    task:
      assign: owner
      title: "Call {{ account.name }} about {{ trigger.event.data.invoice }}"
      due: 2 business days
  - id: hand-over
    start_playbook: follow-up
"""

FOLLOW_UP = """\
playbook: follow-up
title: Follow up
triggers:
  - manual: {}
steps:
  - id: check
    alert: { to: ["#finance"], text: "Check {{ account.name }} in a week" }
"""

CALENDAR_TESTS = """\
playbook: overdue.yaml
account: { id: acme, name: Acme Corp, owner: u-carl }
users: [ { id: u-carl, email: carl@example.com } ]
start: 2030-12-23T09:00:00Z          # a Monday; the 24th and 25th are holidays below
days: 3
calendar: { timezone: UTC, holidays: [2030-12-24, 2030-12-25] }
trigger: { type: billing.invoice_overdue, data: { invoice: INV-7, amount: 5000 } }
cases:
  - name: the due date skips the holidays
    expect:
      - { day: 0, step: call, action: task, text: about INV-7, due: 2030-12-27 }
      - { day: 0, step: follow-up:check, action: alert, to: "#finance" }
  - name: a case's holidays replace the file's
    calendar: { holidays: [2030-12-24] }
    expect:
      - { step: call, due: +3d }
  - name: the wrong date
    expect:
      - { step: call, due: 2030-12-25 }
"""


def test_a_test_file_declares_the_calendar_and_the_trigger_event(tmp_path: Path) -> None:
    (tmp_path / "overdue.yaml").write_text(OVERDUE)
    (tmp_path / "follow-up.yaml").write_text(FOLLOW_UP)
    (tmp_path / "overdue.test.yaml").write_text(CALENDAR_TESTS)
    out = io.StringIO()
    status = run_tests(str(tmp_path / "overdue.test.yaml"), out=out, timings=False)
    assert status == 1
    assert out.getvalue() == f"""\
{tmp_path}/overdue.test.yaml
  PASS  the due date skips the holidays
  PASS  a case's holidays replace the file's
  FAIL  the wrong date
        expected timeline (in this order) vs actual:
        --- expected
        +++ actual
        @@ -1 +1 @@
        -day   *  call  *  *  *  due 2030-12-25
        +day   0  call  task  carl@example.com  Call Acme Corp about INV-7  due 2030-12-27
1 passed... """.replace("1 passed... ", "2 passed, 1 failed\n")


def test_calendar_and_trigger_problems_have_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "overdue.yaml").write_text(OVERDUE)
    bad = (CALENDAR_TESTS.replace("timezone: UTC", "timezone: Mars/Base")
           .replace("data: { invoice: INV-7, amount: 5000 } }", "data: { invoice: INV-7 }, id: 7, typ: x }")
           .replace("holidays: [2030-12-24] }", "holydays: [2030-12-24] }")
           .replace("due: +3d", "due: soon"))
    (tmp_path / "overdue.test.yaml").write_text(bad)
    problems = load_test_file(str(tmp_path / "overdue.test.yaml")).problems
    assert [(p.line, p.col, p.rule, p.message) for p in problems] == [
        (6, 23, "calendar-value", "timezone: 'Mars/Base' is not a time zone"),
        (7, 73, "test-value", "trigger: id: must be text of 1 to 255 characters"),
        (7, 81, "test-value", "trigger: typ: is not a field of an event; the fields are id, type, account_id, "
                              "occurred_at, data"),
        (14, 17, "calendar-unknown-key", "unknown key holydays in the calendar"),
        (16, 28, "test-value", "due: 'soon' is not a date"),
    ]


def test_a_case_whose_step_fails_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "nudge.yaml").write_text(PLAYBOOK.replace("Call {{ account.name }}",
                                                          "Call {{ account.fields.plan.name }}"))
    (tmp_path / "nudge.test.yaml").write_text(TESTS.split("  - name: wrong")[0])
    out = io.StringIO()
    assert run_tests(str(tmp_path), out=out, timings=False) == 1
    report = out.getvalue().splitlines()
    assert report[1:3] == ["  FAIL  right",
                           "        step ask failed on day 0: ExpressionError: 'dict object' has no attribute 'plan' "
                           "(in task.title: {{ account.fields.plan.name }})"]
    assert "Traceback" not in out.getvalue()
