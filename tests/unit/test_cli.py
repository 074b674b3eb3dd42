"""``csops validate`` as a user runs it: exit codes, formats, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
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
