"""``csops health simulate`` with timed events: the model's drop starts the shipped health-drop play.

samples/acme.yaml with samples/health/acme-events.yaml and the shipped model: Acme starts at 81.7
green (24 logins → 47.5 points, 150 of 200 seats, three of four key features, a meeting, NPS 9, a
champion, ARR +8%); on day 6 the champion leaves, 40 seats stay in use and two invoices are overdue:
48.6, below 50, and the play starts from that computed score; on day 7 two escalations: 41.1 red.
The play's own timeline is simulated from day 6 on Temporal's time-skipping test server.
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def test_a_computed_drop_in_timed_events_starts_the_health_drop_play() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["health", "simulate", "--model", str(ROOT / "playbooks" / "health.yaml"), "--account",
                       str(ROOT / "samples" / "acme.yaml"), "--events",
                       str(ROOT / "samples" / "health" / "acme-events.yaml"), "--playbook",
                       str(ROOT / "playbooks" / "health-drop-risk.yaml"), "--days", "10"])
    text = out.getvalue()
    assert status == 0, text
    scores = re.findall(r"day +(\d+) \d\d:\d\d  health ([\d.]+) (\w+)", text)
    assert scores == [("0", "81.7", "green"), ("6", "48.6", "yellow"), ("7", "41.1", "red")]
    assert re.search(r"day +6 \d\d:\d\d  health-drop-risk starts: .*score fell from 81.7 to 48.6, below 50", text)
    assert re.search(r"  0  \S+ \S+  risk-alert +alert +#cs-risk +:rotating_light: Acme Corp health dropped to 49 "
                     r"\(was 82, band yellow\)", text)
    assert re.search(r"  0  \S+ \S+  save-plan +task +carl.chen@example.com +Health drop: save plan for Acme Corp",
                     text)


def test_bad_timed_events_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "events.yaml").write_text("- { at: soon, type: usage.login }\n")
    assert main(["health", "simulate", "--model", str(ROOT / "playbooks" / "health.yaml"), "--account",
                 str(ROOT / "samples" / "acme.yaml"), "--events", str(tmp_path / "events.yaml")]) == 2
