"""``csops demo`` as a user runs it: the console script in a subprocess, with a deadline.

The demo starts a real Temporal dev server, worker and API; these tests check what it prints, what
lands in its outboxes, that it ignores the user's own settings (a csops.yaml naming Slack, a
CSOPS_DATABASE_URL elsewhere) and that no process it started outlives it, also after Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.procs import ROOT

CSOPS = str(Path(sys.executable).parent / "csops")
DEADLINE = 240  # seconds; the demo takes about 5 s here, 2 minutes is the promise on 2 cores


def _env(tmp_path: Path) -> dict[str, str]:
    # Settings a user might have: the demo must not use any of them.
    return {**os.environ, "CSOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'users-own.db'}",
            "CSOPS_TEMPORAL_ADDRESS": "127.0.0.1:1", "CSOPS_TASK_QUEUE": "users-own-queue"}


def _user_dir(tmp_path: Path) -> Path:
    """A working folder with a csops.yaml that would send to Slack: the demo must stay on its outboxes."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "csops.yaml").write_text("chat:\n  kind: slack\n  token: ${NO_SUCH_SLACK_TOKEN}\n", encoding="utf-8")
    return cwd


def _args(home: Path) -> list[str]:
    return [CSOPS, "demo", "--home", str(home), "--playbooks", str(ROOT / "playbooks"),
            "--samples", str(ROOT / "samples"), "--wait", "90"]


def _pids(out: str) -> dict[str, int]:
    found = re.search(r"^stopped: temporal (\d+), worker (\d+), api (\d+)$", out, re.M)
    assert found, out
    return dict(zip(("temporal", "worker", "api"), map(int, found.groups()), strict=True))


def _left_behind(home: Path, pids: dict[str, int]) -> list[str]:
    """Processes the demo started that still exist: by pid, and any process naming the demo home."""
    left = [f"{name} {pid}" for name, pid in pids.items() if Path(f"/proc/{pid}").exists()]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if str(home).encode() in seen:
            left.append(f"pid {proc.name}: {seen[:200]!r}")
    return left


def test_demo_shows_the_effects_and_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    started = time.monotonic()
    done = subprocess.run(_args(home), cwd=_user_dir(tmp_path), env=_env(tmp_path), capture_output=True, text=True,
                          timeout=DEADLINE, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert took < 120, f"the demo took {took:.0f} s"
    assert re.search(r"^    \d+ playbook file\(s\) checked: no errors$", out, re.M), out
    for line in ("1/7 validating",
                 "10 of 10 users imported", "7 of 7 accounts imported", "9 of 9 contacts imported",
                 "180 input events (logins, meetings, NPS, key features) for acme, globex, initech: 180 accepted",
                 "health model: acme computed 85.9 (green)",
                 "(5 events)          Acme Corp's champion leaves, seats go unused, invoices are overdue, four "
                 "escalations: 5 accepted",
                 "usage.feature_used  Globex uses Advanced Analytics for the first time: accepted",
                 "decision   health-drop-risk for acme: run started (health_drop trigger: score fell from 85.9 to "
                 "43.8, below 50)",
                 "decision   new-usage-expansion for globex: run started (new_usage trigger: first use of feature "
                 "advanced_analytics)",
                 "decision   renewal-reminders for initech: run started (contract_milestone trigger: renewal_date is ",
                 "CRM task   'Health drop: save plan for Acme Corp' for Daniel Wu <daniel.wu@example.com>",
                 "CRM task   'Expansion signal: Globex started using Advanced Analytics' for Jordan Reyes",
                 "Slack      #cs-risk: :rotating_light: Acme Corp health dropped to 44 (was 86, band red)",
                 # the model's breakdown of the drop
                 "acme: health 43.8 (red) by model default-health",
                 "      commercial       28.3     25%",
                 "      seat_utilisation      usage               0.2       0     22%",
                 "email      to bill.lumbergh@initech.example: 'Your Initech renewal on",
                 "6/7 simulating", "7/7 stopping", "4 of 4 expected effects arrived",
                 f"Slack alerts  {os.path.relpath(home, tmp_path / 'work')}/outbox/chat.jsonl",
                 "web console   http://127.0.0.1:8000/console once csops up runs"):
        assert line in out, f"{line!r} not in the output:\n{out}"
    # The console's address and a sign-in made for the demo, in the demo's own store.
    assert re.search(r"web console http://127\.0\.0\.1:\d+/console: sign in as demo@example\.com with password \S{16}$",
                     out, re.M), out
    # The renewal playbook's simulated 120 days: every milestone of it, in order.
    timeline = out[out.index("6/7 simulating"):out.index("7/7 stopping")]
    assert "Simulated renewal-reminders for initech (Initech)" in timeline, timeline
    days = {m.group(2): int(m.group(1)) for m in
            re.finditer(r"^\s*(\d+)\s+\S+ \S+\s+(kickoff|renewal-email|send-quote|final-push)\s", timeline, re.M)}
    # Milestones fall on midnight UTC, the run starts at the demo's time of day: day 29.x counts as 29.
    expected = {"kickoff": 0, "renewal-email": 30, "send-quote": 60, "final-push": 90}
    assert days.keys() == expected.keys(), timeline
    assert all(expected[k] - 1 <= days[k] <= expected[k] for k in expected), days
    assert re.search(r"account\.updated\s+Initech's renewal date is set to \d{4}-\d\d-\d\d \(90 days out\): accepted",
                     out), out
    # Each progress line carries the seconds since the start, in order.
    stamps = [float(s) for s in re.findall(r"^\[\s*([\d.]+)s\]", out, re.M)]
    assert len(stamps) >= 20 and stamps == sorted(stamps), out
    # What it showed is in the outboxes, and nothing went to the user's settings.
    chat = [json.loads(line) for line in (home / "outbox" / "chat.jsonl").read_text().splitlines()]
    assert {m["channel"] for m in chat} >= {"cs-risk"}
    assert {m["user_email"] for m in chat} >= {"daniel.wu@example.com"}
    mails = list((home / "outbox" / "mail").glob("*.eml"))
    assert len(mails) == 1 and "To: bill.lumbergh@initech.example" in mails[0].read_text()
    assert not (tmp_path / "users-own.db").exists()
    assert _left_behind(home, _pids(out)) == []


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    proc = subprocess.Popen(_args(home), cwd=_user_dir(tmp_path), env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the stack is up once it imports
            lines.append(line)
            if "3/7 importing" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    assert "interrupted; stopping" in out and "7/7 stopping" in out
    assert _left_behind(home, _pids(out)) == []


def test_a_playbook_error_stops_the_demo_before_anything_starts(tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "bad.yaml").write_text("playbook: bad\ntitle: Bad\ntriggers:\n  - manual: {}\nsteps:\n"
                                    "  - id: n\n    note:\n      text: hi\n    when: account.helth.score < 50\n",
                                    encoding="utf-8")
    done = subprocess.run([CSOPS, "demo", "--home", str(tmp_path / "demo"), "--playbooks", str(books)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"bad\.yaml:9:\d+: \[error\] account has no attribute \"helth\"", done.stdout), done.stdout
    assert "csops demo: 1 error(s)" in done.stderr
    assert "2/7" not in done.stdout and not (tmp_path / "demo").exists()


def test_a_folder_it_did_not_make_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "mine"
    home.mkdir()
    (home / "precious.txt").write_text("keep me", encoding="utf-8")
    done = subprocess.run([CSOPS, "demo", "--home", str(home), "--playbooks", str(ROOT / "playbooks")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not empty and was not made by csops demo" in done.stderr
    assert (home / "precious.txt").read_text() == "keep me"
