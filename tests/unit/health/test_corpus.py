"""The corpus of broken health models (tests/corpus/health): each file declares exactly what loading must report.

The header format is tests/corpus's (tests/unit/test_corpus.py)::

    # expect: 12:7 weights-total
    # expect-hint: 12:7 weights-total add up to 90

Positions are 1-based line:col, worked out from the files; the rule ids are the playbook
validator's (engine.language.problems.RULES) or the health model's own (engine.health.RULES).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from engine.health import RULES as HEALTH_RULES
from engine.health import load_health
from engine.language.problems import RULES

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "health"
_EXPECT = re.compile(r"^#\s*expect:\s*(\d+):(\d+)\s+([a-z][a-z-]*)\s*$")
_HINT = re.compile(r"^#\s*expect-hint:\s*(\d+):(\d+)\s+([a-z][a-z-]*)\s+(\S.*?)\s*$")


def _expectations(path: Path) -> tuple[set[tuple[int, int, str]], list[tuple[tuple[int, int, str], str]]]:
    problems, hints = set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := _EXPECT.match(line):
            problems.add((int(m[1]), int(m[2]), m[3]))
        elif m := _HINT.match(line):
            hints.append(((int(m[1]), int(m[2]), m[3]), m[4]))
    return problems, hints


FILES = sorted(CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_broken_model_reports_exactly_its_expectations(path: Path) -> None:
    expected, hints = _expectations(path)
    assert expected, f"{path.name} declares no expect: line"
    model, problems = load_health(path)
    assert model is None
    assert {(p.line, p.col, p.rule) for p in problems} == expected
    for key, text in hints:
        found = [p for p in problems if (p.line, p.col, p.rule) == key]
        assert any(text in p.message or text in p.hint for p in found), (key, text, found)


def test_every_health_rule_is_shown_by_a_corpus_file() -> None:
    shown = {rule for path in FILES for (_, _, rule) in _expectations(path)[0]}
    assert set(HEALTH_RULES) <= shown
    assert shown <= set(RULES) | set(HEALTH_RULES)


def test_csops_validate_checks_the_health_model_beside_the_playbooks(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    root = Path(__file__).resolve().parents[3]
    shutil.copy(root / "playbooks" / "health-drop-risk.yaml", tmp_path)
    shutil.copy(root / "playbooks" / "health.yaml", tmp_path)
    assert main(["validate", str(tmp_path)]) == 0
    assert "1 playbook file(s) checked: no problems" in capsys.readouterr().out
    shutil.copy(CORPUS / "weights-total-measures.yaml", tmp_path / "health.yaml")
    assert main(["validate", "--format", "json", str(tmp_path)]) == 1
    found = json.loads(capsys.readouterr().out)
    assert [(Path(p["path"]).name, p["line"], p["column"], p["rule"]) for p in found] == [
        ("health.yaml", 7, 5, "weights-total")]
