"""The corpus of broken playbooks (tests/corpus): each file says exactly what validation must report.

A corpus file starts with comment lines that declare every problem the validator must report for
it, no more and no fewer::

    # expect: 12:7 unknown-key
    # expect-hint: 12:7 unknown-key did you mean "title"
    # reject-hint: 14:7 exclusive-keys separate entries

``expect`` lines give 1-based line:col and the rule id; ``expect-hint`` says the message or hint of
that problem must contain the text, ``reject-hint`` that it must not. The positions were worked out
from the files, not copied from the validator. Each folder under ``tests/corpus/multi/`` is
validated as one set (checks across files); its expectations are spread over its files.

Where the validator disagrees with what an author would reasonably expect, the file is listed in
``tests/corpus/known-disagreements.txt`` and runs as a strict xfail: fixing the validator turns it
into an XPASS failure, the prompt to delete the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.language.problems import RULES, Problem
from engine.language.validate import validate_paths

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
MULTI = CORPUS / "multi"
DISAGREEMENTS = CORPUS / "known-disagreements.txt"
#: Rules no corpus file has to show: the JSON Schema backstop and the validator's own failures.
UNCOVERED = {"schema", "internal-error"}

_EXPECT = re.compile(r"^#\s*expect:\s*(\d+):(\d+)\s+([a-z][a-z-]*)\s*$")
_HINT = re.compile(r"^#\s*(expect|reject)-hint:\s*(\d+):(\d+)\s+([a-z][a-z-]*)\s+(\S.*?)\s*$")

Key = tuple[str, int, int, str]
"""(file relative to the corpus, line, col, rule)."""


@dataclass
class Expectations:
    """What one corpus unit (a file, or a folder under multi/) must produce."""

    problems: set[Key] = field(default_factory=set)
    hints: list[tuple[str, Key, str]] = field(default_factory=list)
    """(``expect`` or ``reject``, the problem, the text)."""


def _is_playbook(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and not path.name.endswith((".test.yaml", ".test.yml"))


def _header(path: Path) -> list[str]:
    """The comment lines at the top of a file (read as Latin-1: one corpus file is not UTF-8)."""
    lines = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def _rel(path: Path | str) -> str:
    return Path(path).resolve().relative_to(CORPUS).as_posix()


def read_expectations(files: list[Path]) -> Expectations:
    exp = Expectations()
    for path in files:
        rel = _rel(path)
        for line in _header(path):
            if m := _EXPECT.match(line):
                exp.problems.add((rel, int(m[1]), int(m[2]), m[3]))
            elif m := _HINT.match(line):
                exp.hints.append((m[1], (rel, int(m[2]), int(m[3]), m[4]), m[5]))
            elif re.match(r"^#\s*(expect|reject)", line):
                raise ValueError(f"{rel}: cannot read the expectation {line!r}")
    return exp


def _units() -> dict[str, list[Path]]:
    """Corpus unit name → its files: each top-level file alone, each folder under multi/ as a set."""
    units = {p.name: [p] for p in sorted(CORPUS.iterdir()) if p.is_file() and _is_playbook(p)}
    if MULTI.is_dir():
        for folder in sorted(d for d in MULTI.iterdir() if d.is_dir()):
            units[_rel(folder)] = sorted(p for p in folder.rglob("*") if p.is_file() and _is_playbook(p))
    return units


def _disagreements() -> dict[str, str]:
    """Unit name → why the validator's output differs from the expectation (known-disagreements.txt)."""
    known: dict[str, str] = {}
    if DISAGREEMENTS.exists():
        for line in DISAGREEMENTS.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition(":")
                known[name.strip()] = why.strip()
    return known


UNITS = _units()
KNOWN = _disagreements()


def _params() -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[name])) if name in KNOWN else name
        for name in UNITS
    ]


def _show(key: Key, single: bool, problems: dict[Key, list[Problem]]) -> str:
    rel, line, col, rule = key
    where = f"{line}:{col}" if single else f"{rel}:{line}:{col}"
    said = "".join(f"\n        {p.message}" + (f" (hint: {p.hint})" if p.hint else "") for p in problems.get(key, []))
    return f"    {where} {rule}{said}"


@pytest.mark.parametrize("unit", _params())
def test_corpus_file_reports_exactly_its_expectations(unit: str) -> None:
    files = UNITS[unit]
    single = len(files) == 1 and not unit.startswith("multi/")
    exp = read_expectations(files)
    report = validate_paths([str(files[0])] if single else [str(MULTI / Path(unit).name)])
    by_key: dict[Key, list[Problem]] = {}
    for p in report.problems:
        by_key.setdefault((_rel(p.path), p.line, p.col, p.rule), []).append(p)
    got = set(by_key)

    out = []
    if missing := sorted(exp.problems - got):
        out.append("  expected, not reported:")
        out += [_show(k, single, by_key) for k in missing]
    if extra := sorted(got - exp.problems):
        out.append("  reported, not expected:")
        out += [_show(k, single, by_key) for k in extra]
    for kind, key, text in exp.hints:
        said = [f"{p.message} {p.hint}" for p in by_key.get(key, [])]
        if kind == "expect" and not any(text in s for s in said):
            out.append(f"  message or hint should contain {text!r}:")
            out.append(_show(key, single, by_key))
        elif kind == "reject" and any(text in s for s in said):
            out.append(f"  message or hint should not contain {text!r}:")
            out.append(_show(key, single, by_key))
    if out:
        pytest.fail(
            f"tests/corpus/{unit}: the validator's report differs from the file's expectations\n" + "\n".join(out),
            pytrace=False,
        )


def test_corpus_covers_every_rule() -> None:
    files = [f for fs in UNITS.values() for f in fs]
    assert len(files) >= 40, f"the corpus should hold at least 40 files, found {len(files)}"
    seen: set[str] = set()
    for fs in UNITS.values():
        exp = read_expectations(fs)
        seen |= {rule for *_, rule in exp.problems}
        seen |= {key[3] for _, key, _ in exp.hints}
    assert not seen - set(RULES), f"expectations name rules that do not exist: {sorted(seen - set(RULES))}"
    missing = set(RULES) - UNCOVERED - seen
    assert not missing, f"no corpus file expects these rules: {sorted(missing)}"


def test_known_disagreements_name_corpus_files() -> None:
    stale = sorted(set(KNOWN) - set(UNITS))
    assert not stale, f"known-disagreements.txt names files that are not in the corpus: {stale}"
    assert all(KNOWN.values()), "every known disagreement needs an explanation after the colon"


@pytest.mark.parametrize(
    "name",
    [
        "unknown-key-task-titel.yaml",
        "unquoted-template-task-title.yaml",
        "missing-key-alert-text.yaml",
        "trigger-kind-missing-level.yaml",
    ],
)
def test_cli_prints_position_and_caret(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CORPUS / name)
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    source = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    for _, line, col, rule in sorted(read_expectations([CORPUS / name]).problems):
        head = f"{path}:{line}:{col}: [error] "
        at = next((i for i, text in enumerate(out) if text.startswith(head) and text.endswith(f"({rule})")), None)
        assert at is not None, f"no line starting {head!r} for {rule} in:\n" + "\n".join(out)
        gutter = str(line)
        assert out[at + 1 : at + 4] == [
            f"{' ' * len(gutter)} |",
            f"{gutter} | {source[line - 1]}",
            f"{' ' * len(gutter)} | {' ' * (col - 1)}^",
        ], "\n".join(out[at : at + 5])


def test_cli_exit_codes_for_warnings_and_missing_paths(capsys: pytest.CaptureFixture[str]) -> None:
    warning_only = str(CORPUS / "escalate-without-due.yaml")
    ((_, line, col, rule),) = read_expectations([CORPUS / "escalate-without-due.yaml"]).problems
    assert RULES[rule][0] == "warning"
    assert main(["validate", warning_only]) == 0
    assert f"{warning_only}:{line}:{col}: [warning] " in capsys.readouterr().out
    assert main(["validate", "--strict", warning_only]) == 1
    capsys.readouterr()
    assert main(["validate", str(CORPUS / "no-such-playbook.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
