"""After ``csops demo``, ``csops report playbooks`` shows the demo's runs with their hand-counted figures.

The demo (a real dev server, worker and API, in a subprocess) lists its runs at the end, which
records their steps and tasks in its store; the report then reads that store without Temporal
(``--no-refresh``: the demo stopped it). Hand count of what the three events start:

- health-drop-risk for acme: risk-alert (a DM to the owner and #cs-risk: 2 messages), save-plan
  (a task), flag-risk, log-risk, then it waits for recovery.
- new-usage-expansion for globex: flag-signal, log-signal, ae-outreach (a task), then a 2-day wait.
- renewal-reminders for initech, 90 days before its renewal: kickoff skipped (its ``when`` is for
  runs started at 120 days), wait-90 done at once (on schedule: its moment had come), the
  health-check branch done with its renewal email (1 sent), then the wait for 60 days out.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.test_demo import CSOPS, DEADLINE, _args, _env, _user_dir


def test_the_report_after_the_demo_counts_its_runs(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    done = subprocess.run(_args(home), cwd=_user_dir(tmp_path), env=_env(tmp_path), capture_output=True, text=True,
                          timeout=DEADLINE, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    env = {**_env(tmp_path), "CSOPS_DATABASE_URL": f"sqlite:///{home / 'csops.db'}", "CSOPS_HOME": str(home)}
    report = subprocess.run([CSOPS, "report", "playbooks", "--no-refresh", "--format", "json"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert report.returncode == 0, report.stderr
    books = {b["playbook"]: b["versions"][0] for b in json.loads(report.stdout)["playbooks"]}
    assert sorted(books) == ["health-drop-risk", "new-usage-expansion", "renewal-reminders"]
    for figures in books.values():
        assert (figures["runs"]["started"], figures["runs"]["running"]) == (1, 1)
    steps = {pb: {s["step"]: (s["reached"], s["on_schedule"], s["skipped"]) for s in v["steps"]}
             for pb, v in books.items()}
    assert steps == {
        "health-drop-risk": {"risk-alert": (1, 1, 0), "save-plan": (1, 1, 0), "flag-risk": (1, 1, 0),
                             "log-risk": (1, 1, 0)},
        "new-usage-expansion": {"flag-signal": (1, 1, 0), "log-signal": (1, 1, 0), "ae-outreach": (1, 1, 0)},
        "renewal-reminders": {"kickoff": (1, 0, 1), "wait-90": (1, 1, 0), "renewal-email": (1, 1, 0),
                              "health-check": (1, 1, 0)}}
    assert books["health-drop-risk"]["alerts"]["sent"] == 2
    assert books["renewal-reminders"]["emails"]["sent"] == 1
    assert [books[pb]["tasks"]["created"] for pb in sorted(books)] == [1, 1, 0]
    text = subprocess.run([CSOPS, "report", "playbooks", "--no-refresh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "renewal-reminders" in text.stdout and "1 started, 1 running" in text.stdout
