"""The report, tasks and forecast commands through ``csops``'s main: exit codes, JSON and the
errors a user can make (a bad span, an unknown task or playbook, an unreadable events file)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Account, NewTask, TaskRecord, User
from connectors.sqlcrm import SQLCRM
from engine.cli.main import main
from engine.runtime.runtasks import save_tasks
from engine.store.store import Store

NOW = datetime.now(UTC)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSOPS_CONFIG", raising=False)
    monkeypatch.setenv("CSOPS_HOME", str(tmp_path / ".csops"))
    monkeypatch.setenv("CSOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'csops.db'}")
    monkeypatch.setenv("CSOPS_PLAYBOOKS", str(tmp_path / "playbooks"))
    (tmp_path / "playbooks").mkdir()
    return tmp_path


async def seed(home: Path) -> None:
    url = f"sqlite:///{home / 'csops.db'}"
    crm, store = SQLCRM(url), Store(url)
    try:
        crm.add_user(User(id="u1", email="ann@example.com", name="Ann"))
        crm.add_account(Account(id="acme", name="Acme", segment="smb", owner_id="u1"))
        await store.add_run(run_id="pb:x:acme:once", playbook="x", version="v1", account_id="acme",
                            started_at=NOW - timedelta(days=3))
        await store.end_run("pb:x:acme:once", status="completed", reason="completed: all steps done", at=NOW)
        await save_tasks(store, [{"task_id": "t1", "run_id": "pb:x:acme:once", "step": "call", "playbook": "x",
                                  "version": "v1", "account_id": "acme", "assignee": "ann@example.com",
                                  "title": "Call Acme", "due": (NOW - timedelta(days=1)).date(),
                                  "created_at": NOW - timedelta(days=3), "status": "open", "closed_at": None,
                                  "escalations": 0}])
    finally:
        crm.close()
        store.close()


def test_report_and_tasks_print_json_and_text(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(seed(home))
    assert main(["report", "playbooks", "--since", "30d", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["playbooks"][0]["versions"][0]["runs"]["completed"] == 1
    assert main(["tasks", "--owner", "ann@example.com", "--overdue", "--no-check", "--format", "json"]) == 0
    [task] = json.loads(capsys.readouterr().out)
    assert (task["task_id"], task["overdue"]) == ("t1", True)
    assert main(["tasks", "--no-check"]) == 0
    assert "OVERDUE" in capsys.readouterr().out
    assert main(["report", "workload"]) == 0
    assert "ann@example.com" in capsys.readouterr().out


def test_completing_a_task_whose_run_ended_completes_it_in_the_crm(home: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    created = asyncio.run(_task_of_an_ended_run(home))
    assert main(["tasks", "done", created.id]) == 0
    assert "completed in the CRM" in capsys.readouterr().out
    assert main(["tasks", "done", created.id]) == 0
    assert "already completed" in capsys.readouterr().out
    crm = SQLCRM(f"sqlite:///{home / 'csops.db'}")
    try:
        [task] = [t for t in crm.list_tasks() if t.id == created.id]
    finally:
        crm.close()
    assert task.status == "completed"


async def _task_of_an_ended_run(home: Path) -> TaskRecord:
    await seed(home)
    crm = SQLCRM(f"sqlite:///{home / 'csops.db'}")
    try:
        created = await crm.create_task(NewTask(account_id="acme", assignee_id="u1", title="Call Acme"), "k1")
    finally:
        crm.close()
    store = Store(f"sqlite:///{home / 'csops.db'}")
    try:
        await save_tasks(store, [{"task_id": created.id, "run_id": "pb:x:acme:once", "step": "call2", "playbook": "x",
                                  "version": "v1", "account_id": "acme", "assignee": "ann@example.com",
                                  "title": "Call Acme", "due": None, "created_at": NOW, "status": "open",
                                  "closed_at": None, "escalations": 0}])
    finally:
        store.close()
    return created


@pytest.mark.parametrize(("argv", "said"), [
    (["report", "playbooks", "--since", "lately"], "'lately' is neither a span (90d) nor a date"),
    (["report", "playbooks", "--tolerance", "0m"], "not a span"),
    (["tasks", "done", "nope"], "no run created a task 'nope'"),
    (["forecast", "no-such-playbook", "--no-replay"], "there is no valid playbook 'no-such-playbook'"),
    (["forecast", "x", "--from-events", "missing.json"], "missing.json: cannot read it"),
    (["forecast", "x", "--days", "0"], "--days must be 1 or more"),
])
def test_user_mistakes_exit_non_zero_with_a_reason(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                                   said: str) -> None:
    status = main(argv)
    assert status in (1, 2)
    assert said in capsys.readouterr().err


BAD_SPANS = ["", "0d", "-3d", "3x", "d", "1.5d", "90 days", "P90D", "9999999999999999999999d", "36526d", "5300w"]
"""Spans ``--since`` and ``--tolerance`` refuse (a corpus of user mistakes)."""


@pytest.mark.parametrize("text", BAD_SPANS)
def test_bad_spans_are_refused_with_what_to_write(text: str) -> None:
    import argparse

    from engine.reports.spans import parse_since, parse_span

    with pytest.raises(argparse.ArgumentTypeError, match="90d"):
        parse_span(text)
    with pytest.raises(argparse.ArgumentTypeError, match="90d"):
        parse_since(text)


def test_good_spans_and_dates() -> None:
    from engine.reports.spans import parse_since, parse_span

    assert [parse_span(t) for t in ("15m", "36h", "90d", "12w")] == [
        timedelta(minutes=15), timedelta(hours=36), timedelta(days=90), timedelta(weeks=12)]
    assert parse_since("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_since("2026-01-31T09:00:00+01:00") == datetime(2026, 1, 31, 8, tzinfo=UTC)


WATCH = """\
playbook: watch
title: Watch
triggers: [{manual: {}}]
audience: {segments: [strategic]}
steps:
  - id: hello
    note: {text: hi}
"""


def test_forecast_today_through_main(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(seed(home))
    (home / "playbooks" / "watch.yaml").write_text(WATCH, encoding="utf-8")
    assert main(["forecast", "watch", "--no-replay", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"playbook": "watch", "today": {"accounts": 1, "start": [],
                                                  "not_started": {"audience.segments": ["acme"]}}}


async def test_stored_events_are_read_from_since_oldest_first(home: Path) -> None:
    from engine.cli.cli_forecast import stored_events
    from engine.store.store_models import EventRecord

    store = Store(f"sqlite:///{home / 'csops.db'}")
    try:
        for i, days in enumerate((40, 5, 10)):
            await store.add_event(EventRecord(id=f"e{i}", type="x.y", account_id="acme", received_at=NOW,
                                              occurred_at=NOW - timedelta(days=days), data={"n": i}))
        found = await stored_events(store, NOW - timedelta(days=30))
    finally:
        store.close()
    assert [(e["id"], e["data"]) for e in found] == [("e2", {"n": 2}), ("e1", {"n": 1})]
