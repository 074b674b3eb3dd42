"""``csops simulate``: the real workflow on the time-skipping server with recording connectors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from engine.cli.cli_sim import read_account, read_events
from engine.language.coverage import load_coverage
from engine.language.validate import check_text, validate_paths
from engine.sim.playbooktest import next_monday
from engine.sim.simulate import SimulationError, format_timeline, simulate

ROOT = Path(__file__).resolve().parents[2]
CSOPS = str(Path(sys.executable).parent / "csops")

HOOK = """\
playbook: hook
title: Hook
triggers:
  - manual: {}
steps:
  - id: tell-billing
    http:
      method: POST
      url: https://billing.example.invalid/hooks/{{ account.id }}
      headers: { Authorization: "Bearer not-a-real-token" }
      json: { account: "{{ account.id }}", arr: "{{ account.arr }}" }
  - id: mail
    email:
      to: primary_contact
      from: owner
      subject: "Hello {{ contact.first_name }}"
      body: "Body for {{ account.name }}"
"""


async def test_the_renewal_playbook_touches_the_account_at_120_90_60_30_days() -> None:
    pb = validate_paths([str(ROOT / "playbooks/renewal-reminders.yaml")]).playbooks["renewal-reminders"]
    coverage, problems = load_coverage(ROOT / "playbooks/coverage.yaml")
    assert problems == []
    sample = read_account(str(ROOT / "samples/acme.yaml"))
    start = next_monday(datetime.now(UTC))
    timeline = await simulate(pb, sample["account"], contacts=sample["contacts"], users=sample["users"],
                              start=start, coverage=coverage)
    effects = [(e.day, e.step, e.action, e.to) for e in timeline if e.action in ("task", "email", "alert", "reassign")]
    assert effects == [
        (0, "kickoff", "task", "carl.chen@example.com"),
        (3, "kickoff/escalate/0", "alert", "maria.lopez@example.com"),
        (9, "kickoff/escalate/1", "reassign", "maria.lopez@example.com"),
        (30, "renewal-email", "email", "pat.lee@acme.example"),
        (60, "send-quote", "task", "carl.chen@example.com"),
        (74, "send-quote/escalate/0", "alert", "maria.lopez@example.com"),
        (90, "final-push", "task", "carl.chen@example.com"),
        (90, "last-call-alert", "alert", "maria.lopez@example.com"),
        (90, "last-call-alert", "alert", "#cs-risk"),
        (93, "final-push/escalate/0", "alert", "maria.lopez@example.com"),
        (95, "final-push/escalate/1", "reassign", "maria.lopez@example.com"),
    ]
    assert timedelta(0) <= timeline[0].at - start < timedelta(seconds=5)  # the run starts at --start
    assert timeline.trigger["type"] == "contract_milestone"
    assert timeline.outcome == "running" and timeline[-1].action == "end"
    kickoff = timeline[0]
    assert kickoff.detail["resolved"] == ["owner of a strategic account is role csm",
                                          "role csm -> account.owner -> carl.chen@example.com"]
    assert kickoff.detail["due"] == (start + timedelta(days=7)).date().isoformat()  # 5 business days from a Monday


def test_the_simulate_command_prints_the_timeline() -> None:
    # Its speed is no assertion here (a timed test fails on a loaded machine for no fault of the code).
    done = subprocess.run([CSOPS, "simulate", "playbooks/renewal-reminders.yaml", "--account", "samples/acme.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    rows = [line.split() for line in done.stdout.splitlines()[4:]]
    assert [(r[0], r[3], r[4]) for r in rows if r[4] in ("task", "email")] == [
        ("0", "kickoff", "task"), ("30", "renewal-email", "email"), ("60", "send-quote", "task"),
        ("90", "final-push", "task")]


async def test_webhooks_and_mail_are_recorded_and_not_sent() -> None:
    pb = check_text(HOOK).playbook
    assert pb is not None
    timeline = await simulate(pb, {"id": "acme", "name": "Acme", "owner": "u-1", "arr": 5000},
                              contacts=[{"id": "c-1", "email": "pat@acme.example", "first_name": "Pat",
                                         "primary": True}],
                              users=[{"id": "u-1", "email": "carl@example.com", "name": "Carl"}], days=1)
    data = json.loads(format_timeline(timeline, "json"))
    hook, mail = (e for e in data["entries"] if e["action"] in ("http", "email"))
    assert (hook["step"], hook["to"], hook["text"]) == ("tell-billing", "https://billing.example.invalid/hooks/acme",
                                                        "POST")
    assert hook["detail"] == {"json": {"account": "acme", "arr": "5000.0"}, "headers": ["Authorization"]}
    assert "not-a-real-token" not in json.dumps(data)
    assert (mail["to"], mail["text"], mail["detail"]["body"]) == ("pat@acme.example", "Hello Pat", "Body for Acme")
    assert data["outcome"] == "completed"


@pytest.mark.parametrize(("events", "start", "message"), [
    ([{"at": "2d", "typ": "x"}], None,
     "event 1: unknown key(s) typ; known: at, type, id, data, account, complete_task"),
    ([{"type": "x"}], None, "event 1: needs at:"),
    ([{"at": "soon", "type": "x"}], None, "event 1: at: 'soon' is neither an offset"),
    ([], datetime(2020, 1, 6, 9, tzinfo=UTC), "the start 2020-01-06T09:00:00+00:00 is in the past"),
])
async def test_bad_input_is_refused_in_plain_words(events: list[dict[str, str]], start: datetime | None,
                                                   message: str) -> None:
    pb = check_text(HOOK).playbook
    assert pb is not None
    with pytest.raises(SimulationError) as caught:
        await simulate(pb, {"id": "acme"}, events=events, start=start, days=1)
    assert str(caught.value).startswith(message)


def test_event_and_account_files(tmp_path: Path) -> None:
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"at": "45d", "type": "account.churned"}\n\n{"at": "2d", "complete_task": "kickoff"}\n')
    assert read_events(str(lines)) == [{"at": "45d", "type": "account.churned"},
                                       {"at": "2d", "complete_task": "kickoff"}]
    listed = tmp_path / "events.yaml"
    listed.write_text("- { at: 45d, account: { renewal_status: renewed } }\n")
    assert read_events(str(listed)) == [{"at": "45d", "account": {"renewal_status": "renewed"}}]
    fields_only = tmp_path / "acct.yaml"
    fields_only.write_text(yaml.safe_dump({"id": "x", "renewal_date": "+30d"}))
    assert read_account(str(fields_only)) == {"account": {"id": "x", "renewal_date": "+30d"}, "contacts": [],
                                              "users": []}
    bad = tmp_path / "bad.yaml"
    bad.write_text("account: {id: x}\nteam: []\n")
    with pytest.raises(ValueError, match="unknown key"):
        read_account(str(bad))
