"""``csops validate`` and ``csops event failed|retry`` as a user runs them: exit codes, formats, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.store.store import EventRecord, Store
from tests.conftest import ROOT

GOOD = """\
playbook: ok
title: OK
triggers:
  - manual: {}
steps:
  - id: hello
    note: { text: "Hello {{ account.name }}" }
"""
BAD = GOOD.replace("note:", "nope:")
WARN = GOOD.replace(
    '    note: { text: "Hello {{ account.name }}" }',
    "    task:\n      title: t\n      escalate:\n        - after: 1d\n          notify: owner.manager",
)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", _write(tmp_path, "ok.yaml", GOOD)]) == 0
    assert "no problems" in capsys.readouterr().out


def test_problem_exits_1_with_position_rule_and_caret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "bad.yaml", BAD)
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'{path}:7:5: [error] unknown key "nope" in item 1 of steps (unknown-key)'
    assert out[2] == "7 |     nope: { text: \"Hello {{ account.name }}\" }"
    assert out[3] == "  |     ^"
    assert out[4] == '  hint: did you mean "note"?'


def test_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    path = _write(tmp_path, "warn.yaml", WARN)
    assert main(["validate", path]) == 0
    assert main(["validate", "--strict", path]) == 1


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no such file or folder" in err and "Traceback" not in err


def test_bad_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert main(["validate", "--format", "xml", "x"]) == 2
    assert main([]) == 2


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "bad.yaml", BAD)
    assert main(["validate", "--format", "json", path]) == 1
    problems = json.loads(capsys.readouterr().out)
    assert problems == [{"path": path, "line": 7, "column": 5, "severity": "error", "rule": "unknown-key",
                         "message": 'unknown key "nope" in item 1 of steps', "hint": 'did you mean "note"?'}]


def test_github_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "bad.yaml", BAD)
    assert main(["validate", "--format", "github", path]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"::error file={path},line=7,col=5,title=unknown-key::unknown key")


def test_folder_expands_to_playbooks_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "a.yaml", GOOD)
    _write(tmp_path, "a.test.yaml", "not: [a playbook")
    _write(tmp_path, "notes.txt", "ignored")
    (tmp_path / ".hidden").mkdir()
    _write(tmp_path / ".hidden", "b.yaml", "broken: [")
    assert main(["validate", str(tmp_path)]) == 0
    assert "1 playbook file(s) checked" in capsys.readouterr().out


def test_start_playbook_target_must_be_in_the_validated_set(tmp_path: Path) -> None:
    caller = GOOD.replace("playbook: ok", "playbook: caller").replace(
        '    note: { text: "Hello {{ account.name }}" }', "    start_playbook: ok")
    c = _write(tmp_path, "caller.yaml", caller)
    assert main(["validate", c]) == 1
    assert main(["validate", c, _write(tmp_path, "ok.yaml", GOOD)]) == 0


def test_console_script_ends_cleanly_without_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "playbook: [unclosed\n\tx: 1\n")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "validate", path], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    assert "(yaml-syntax)" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_shipped_playbooks_validate_through_the_console_script() -> None:
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "validate", "playbooks/"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- csops event failed | retry -----------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)


def _store_with_a_failed_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store (the settings' one) with bad-1 failed for good, ok-1 processed; its URL."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.chdir(tmp_path)  # no csops.yaml here
    monkeypatch.delenv("CSOPS_CONFIG", raising=False)
    monkeypatch.setenv("CSOPS_DATABASE_URL", url)

    async def seed() -> None:
        store = Store(url)
        try:
            await store.add_events([EventRecord(id=i, type="billing.invoice_overdue", account_id="acme",
                                                occurred_at=T0, received_at=T0) for i in ("bad-1", "ok-1")],
                                   received_at=T0)
            await store.unprocessed(10, now=T0)
            await store.mark_processed(["ok-1"], at=T0)
            await store.record_failures([("bad-1", "HTTPError: 500 from\nthe CRM")], at=T0, max_attempts=1)
        finally:
            store.close()
    asyncio.run(seed())
    return url


def test_event_failed_lists_failed_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSOPS_CONFIG", raising=False)
    monkeypatch.setenv("CSOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["event", "failed"]) == 0
    assert capsys.readouterr().out == "no failed events\n"
    _store_with_a_failed_event(tmp_path, monkeypatch)
    assert main(["event", "failed"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID     TYPE                     ACCOUNT  ATTEMPTS  FIRST RECEIVED (UTC)  LAST ERROR",
        "bad-1  billing.invoice_overdue  acme     1         2026-11-23 10:00:00   HTTPError: 500 from the CRM",
        "1 failed event(s); csops event retry ID queues one again"]
    assert main(["event", "failed", "--limit", "0"]) == 2
    assert "--limit must be 1 or more" in capsys.readouterr().err


def test_event_queued_says_how_many_wait_and_since_when(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    url = _store_with_a_failed_event(tmp_path, monkeypatch)
    assert main(["event", "queued"]) == 0
    assert capsys.readouterr().out.startswith("no events queued")  # bad-1 failed, ok-1 processed
    store = Store(url)
    try:
        asyncio.run(store.add_events([EventRecord(id=f"q-{n}", type="email.replied", account_id="acme",
                                                  occurred_at=T0, received_at=T0) for n in range(3)],
                                     received_at=T0 + timedelta(minutes=1)))
    finally:
        store.close()
    assert main(["event", "queued"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"3 event(s) queued, the oldest received {T0 + timedelta(minutes=1):%Y-%m-%d %H:%M:%S} UTC")
    assert "no processor is running" in said


def test_event_retry_queues_failed_events_and_says_what_else_it_met(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = _store_with_a_failed_event(tmp_path, monkeypatch)
    assert main(["event", "retry", "bad-1", "ok-1", "nope"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "bad-1: queued again with its attempts reset; the event processor (csops up, csops api, or csops process "
        "beside `csops api --no-processing`) takes it up",
        "ok-1: not a failed event: it was processed",
        "nope: no event has this id"]
    assert main(["event", "retry", "bad-1"]) == 1
    assert capsys.readouterr().out == ("bad-1: not a failed event: it is still queued (waiting for its turn or "
                                       "a retry)\n")
    store = Store(url)
    try:
        assert asyncio.run(store.pending_count()) == 1
        asyncio.run(store.unprocessed(10, now=T0))
        asyncio.run(store.record_failures([("bad-1", "again")], at=T0, max_attempts=1))
    finally:
        store.close()
    assert main(["event", "retry", "bad-1"]) == 0
    assert main(["event", "retry"]) == 2  # an id is required


def test_csops_start_records_the_login_name_without_by_and_cli_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    from engine.cli.main import started_by

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "ann")
    assert started_by() == "ann"

    def nobody() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert started_by() == "cli"


def test_a_reader_that_leaves_the_pipe_gets_no_error_line(tmp_path: Path) -> None:
    # `csops validate folder | head -1`: the reader closes the pipe while csops still writes; csops ends
    # quietly with 141 (128 + SIGPIPE) instead of "internal error: BrokenPipeError".
    for i in range(400):
        _write(tmp_path, f"p{i}.yaml", BAD.replace("playbook: ok", f"playbook: p{i}"))
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(tmp_path)], cwd=ROOT, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141


@pytest.mark.parametrize(("argv", "pointers"), [
    (["runs"], True), (["process"], True), (["report", "playbooks"], False), (["tasks", "list"], False),
    (["forecast", "any"], False), (["suppression", "list"], False)])
def test_an_unusable_config_file_is_said_once_by_every_command_in_its_own_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
        pointers: bool) -> None:
    """One reader of the settings (engine/cli/common.load_settings): the run commands give each problem's hint
    and point to check-config; the report, forecast, tasks and suppression commands say the problems only."""
    config = tmp_path / "csops.yaml"
    config.write_text("crmm:\n  kind: builtin\n", encoding="utf-8")
    monkeypatch.setenv("CSOPS_CONFIG", str(config))
    monkeypatch.setenv("CSOPS_HOME", str(tmp_path / "home"))
    assert main(argv) == 2
    hint, more = (' (hint: did you mean "crm"?)', " (csops check-config says more)") if pointers else ("", "")
    assert capsys.readouterr().err == (f'{config}:1:1: unknown key "crmm" in the configuration{hint}\n'
                                       f"csops {argv[0]}: {config}: 1 problem(s){more}\n")
