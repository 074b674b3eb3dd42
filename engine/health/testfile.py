"""Health model tests: ``health.test.yaml`` (or ``NAME.health.test.yaml``) files of cases, and ``csops health test``.

A case gives an account's segment, lifecycle stage and measure values (``facts``) and says what
the score and band must be::

    model: health.yaml            # relative to the test file
    cases:
      - name: a quiet SMB account is red
        segment: smb
        facts: { logins_30d: 2, seat_utilisation: 0.1 }
        score: 12.3               # exact, to one decimal (or omit it and give band only)
        band: red

A fact that is not a measure of the model is a problem at its line, with a did-you-mean.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine.health.score import score
from engine.language import report
from engine.language.health_loader import load_health
from engine.language.health_model import HealthModel
from engine.language.problems import Problem, file_problem, problem_at
from engine.language.yamlpos import Document, read

__all__ = ["TEST_SUFFIXES", "Case", "is_health_test", "load_cases", "run_health_tests"]

TEST_SUFFIXES = ("health.test.yaml", "health.test.yml")
"""Health test files end so (``health.test.yaml``, ``acme.health.test.yaml``); ``csops test`` leaves them alone."""
_CASE_KEYS = ("name", "segment", "lifecycle_stage", "facts", "score", "band")


def is_health_test(name: str) -> bool:
    """Whether a file name is a health test file's."""
    return os.path.basename(name).endswith(TEST_SUFFIXES)


@dataclass(frozen=True, kw_only=True)
class Case:
    """One case: given these facts, this score and band."""

    name: str
    """What it checks."""
    line: int
    """Where it starts (1-based)."""
    facts: dict[str, Any]
    """Measure values by measure name."""
    segment: str = ""
    """The account's segment."""
    lifecycle_stage: str = ""
    """Its lifecycle stage."""
    score: float | None = None
    """The expected score (None: not checked)."""
    band: str | None = None
    """The expected band (None: not checked)."""


@dataclass
class Loaded:
    """A test file read: its model, its cases and every problem."""

    model: HealthModel | None = None
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _check_case(doc: Document, i: int, raw: Any, model: HealthModel, out: Loaded) -> None:
    p = ("cases", i)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        out.problems.append(problem_at(doc, p, "missing-key", "a case is a mapping with a name",
                                       "name: what it checks"))
        return
    for key in raw:
        if key not in _CASE_KEYS:
            near = difflib.get_close_matches(str(key), _CASE_KEYS, n=1, cutoff=0.6)
            out.problems.append(problem_at(doc, (*p, key), "unknown-key", f'unknown key "{key}" in a case',
                                           f'did you mean "{near[0]}"?' if near else "keys: " + ", ".join(_CASE_KEYS),
                                           key=True))
    facts = raw.get("facts") or {}
    names = [m.name for m in model.measures]
    for fact in facts if isinstance(facts, dict) else ():
        if fact not in names:
            near = difflib.get_close_matches(str(fact), names, n=1, cutoff=0.6)
            out.problems.append(problem_at(doc, (*p, "facts", fact), "unknown-measure",
                                           f'"{fact}" is not a measure of {model.source}',
                                           f'did you mean "{near[0]}"?' if near else "measures: " + ", ".join(names),
                                           key=True))
    expected = raw.get("score")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int | float)):
        out.problems.append(problem_at(doc, (*p, "score"), "type", "score must be a number 0-100"))
        return
    if raw.get("band") not in (None, "red", "yellow", "green"):
        out.problems.append(problem_at(doc, (*p, "band"), "unknown-value", "band must be red, yellow or green"))
        return
    out.cases.append(Case(name=raw["name"], line=doc.pos(p)[0] + 1, facts=dict(facts) if isinstance(facts, dict)
                          else {}, segment=str(raw.get("segment") or ""),
                          lifecycle_stage=str(raw.get("lifecycle_stage") or ""),
                          score=None if expected is None else float(expected), band=raw.get("band")))


def load_cases(path: str) -> Loaded:
    """Read a health test file and its model; every problem has its line and column."""
    out = Loaded()
    try:
        doc = read(path)
    except OSError as exc:
        out.problems.append(file_problem(path, "health-file", f"cannot read: {exc.strerror or exc}"))
        return out
    out.problems.extend(doc.problems)
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("model"), str) or not isinstance(data.get("cases"), list):
        out.problems.append(problem_at(doc, (), "missing-key", "a health test file has model: (the health.yaml to "
                                       "test) and cases: (a list)", "see docs/health.md, Testing a model"))
        return out
    model_path = os.path.join(os.path.dirname(path), data["model"])
    out.model, problems = load_health(model_path)
    out.problems.extend(problems)
    if out.model is None:
        if not problems:
            out.problems.append(problem_at(doc, ("model",), "health-file", f"{model_path} has no usable model"))
        return out
    for i, raw in enumerate(data["cases"]):
        _check_case(doc, i, raw, out.model, out)
    return out


def run_case(model: HealthModel, case: Case) -> list[str]:
    """What is wrong with the case's outcome ([] when it passes)."""
    result = score(model, case.facts, segment=case.segment, lifecycle_stage=case.lifecycle_stage)
    wrong = []
    if case.score is not None and (result.score is None or abs(result.score - case.score) > 0.05):
        wrong.append(f"score: expected {case.score:g}, got {'no score' if result.score is None else result.score}")
    if case.band is not None and result.band != case.band:
        wrong.append(f"band: expected {case.band}, got {result.band or 'no band'}")
    if wrong:
        wrong.append("breakdown: " + "; ".join(f"{line.measure} {line.points if line.points is not None else '-'} pts "
                                               f"x {line.weight * 100:.0f}%" for line in result.lines if line.weight))
    return wrong


def _files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in sorted(names) if is_health_test(n)]
    return found


def run_health_tests(path: str, out: TextIO) -> int:
    """``csops health test PATH``: 0 every case passed, 1 a case failed, 2 a file (or the path) is unusable."""
    files = _files(path)
    if not files:
        print(f"csops health test: no health.test.yaml files in {path}", file=out)
        return 2
    passed = failed = broken = 0
    for file in files:
        loaded = load_cases(file)
        print(file, file=out)
        if loaded.problems or loaded.model is None:
            broken += 1
            print(report.as_text(loaded.problems, _lines), file=out)
            continue
        for case in loaded.cases:
            wrong = run_case(loaded.model, case)
            passed, failed = passed + (not wrong), failed + bool(wrong)
            print(f"  {'PASS' if not wrong else 'FAIL'}  {case.name} (line {case.line})", file=out)
            for text in wrong:
                print(f"        {text}", file=out)
    print(f"{passed} passed, {failed} failed" + (f", {broken} bad test file(s)" if broken else ""), file=out)
    return 2 if broken else 1 if failed else 0


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().splitlines()
    except OSError:
        return []
