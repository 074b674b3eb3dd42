"""The one rule catalogue (engine.language.problems.CATALOGUE): every rule id the engine can report is
in it once, with its severity, and docs/validation.md lists it; problems are built by the factory only.

The rule ids are found by reading the code (ast): every argument given to a parameter named ``rule``
(of a function, a method or a dataclass such as ``Finding``), resolved through module constants
(``UNREADABLE = "template-file"``), both branches of ``a if c else b`` and the values of the
``*_RULES`` tables. A rule id built at run time (an f-string) is refused, so the scan sees them all.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.language.problems import ALL_RULES, CATALOGUE, RULES, file_problem, make, problem_at, severity_of
from engine.language.yamlpos import load

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(ROOT.joinpath("engine").rglob("*.py"))
FACTORY = ROOT / "engine" / "language" / "problems.py"


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES}


def _rule_index(args: ast.arguments) -> int | None:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if "rule" not in names:
        return None
    index = names.index("rule")
    return index - 1 if names and names[0] in ("self", "cls") else index


def _takers(trees: dict[Path, ast.Module]) -> tuple[dict[str, set[int]], dict[Path, dict[str, int | None]]]:
    """Callables with a ``rule`` parameter: by name for attribute calls (methods) and imported
    functions, and by module for bare-name calls (functions and closures defined there)."""
    anywhere: dict[str, set[int]] = defaultdict(set)
    local: dict[Path, dict[str, int | None]] = {}
    for path, tree in trees.items():
        here: dict[str, int | None] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                index = _rule_index(node.args)
                here.setdefault(node.name, index)
                if index is not None:
                    here[node.name] = index
                    anywhere[node.name].add(index)
            elif isinstance(node, ast.ClassDef):
                fields = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                          and isinstance(s.target, ast.Name)]
                if "rule" in fields:
                    here[node.name] = fields.index("rule")
                    anywhere[node.name].add(fields.index("rule"))
        local[path] = here
    return anywhere, local


def _constants(tree: ast.Module) -> dict[str, str]:
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


def _ids(node: ast.expr, constants: dict[str, str]) -> Iterator[str]:
    """The rule ids an expression can be; ``!`` and the source for one built at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _ids(node.body, constants)
        yield from _ids(node.orelse, constants)
    elif isinstance(node, ast.Name) and node.id in constants:
        yield constants[node.id]
    elif isinstance(node, ast.JoinedStr | ast.BinOp):
        yield "!" + ast.unparse(node)


def emitted() -> dict[str, set[str]]:
    """Every rule id the engine's code passes to a ``rule`` parameter, with where."""
    trees = _trees()
    anywhere, local = _takers(trees)
    found: dict[str, set[str]] = defaultdict(set)
    for path, tree in trees.items():
        if path == FACTORY:
            continue
        constants = _constants(tree)
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_RULES")
                                                    for t in node.targets) and isinstance(node.value, ast.Dict):
                for value in node.value.values:
                    for rule in _ids(value, constants):
                        found[rule].add(f"{where}:{node.lineno}")
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Name):
                name = node.func.id
                indexes = {local[path][name]} if name in local[path] else anywhere.get(name, set())
            elif isinstance(node.func, ast.Attribute):
                indexes = anywhere.get(node.func.attr, set())
            else:
                continue
            given = [node.args[i] for i in indexes if i is not None and i < len(node.args)]
            given += [k.value for k in node.keywords if k.arg == "rule"]
            for arg in given:
                for rule in _ids(arg, constants):
                    found[rule].add(f"{where}:{node.lineno}")
    return found


def test_the_scan_sees_the_factory_calls_of_every_file_kind() -> None:
    found = emitted()
    assert {"yaml-syntax", "unknown-key", "env-var", "coverage-file", "unknown-role", "health-file", "test-value",
            "calendar-value", "source", "template-file", "unknown-name"} <= set(found)


def test_every_rule_id_the_engine_reports_is_in_the_catalogue() -> None:
    found = emitted()
    built = {rule: sorted(at) for rule, at in found.items() if rule.startswith("!")}
    assert built == {}, "rule ids must be written out, not built at run time"
    assert {rule: sorted(at) for rule, at in found.items() if rule not in ALL_RULES} == {}


def test_every_rule_of_the_catalogue_is_reported_somewhere() -> None:
    assert sorted(set(ALL_RULES) - set(emitted())) == []


def test_a_rule_id_is_in_one_group_only_and_the_playbook_rules_are_the_validators() -> None:
    groups = defaultdict(list)
    for kind, rules in CATALOGUE.items():
        for rule in rules:
            groups[rule].append(kind)
    assert {rule: kinds for rule, kinds in groups.items() if len(kinds) > 1} == {}
    assert sum(map(len, CATALOGUE.values())) == len(ALL_RULES)
    assert list(CATALOGUE) == ["playbook", "config", "coverage", "health", "test file", "sources"]
    assert RULES is CATALOGUE["playbook"]
    assert {rule for rule, (severity, _) in ALL_RULES.items() if severity == "warning"} == {
        "event-type-typo", "escalate-without-due"}


def test_only_the_factory_builds_a_problem() -> None:
    direct = [f"{path.relative_to(ROOT).as_posix()}:{node.lineno}" for path, tree in _trees().items()
              if path != FACTORY for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Problem"]
    assert direct == []


def test_the_factory_takes_the_severity_from_the_catalogue_and_refuses_an_unknown_rule() -> None:
    doc = load("steps:\n  - id: one\n    task: {titel: x}\n", "p.yaml")
    assert problem_at(doc, ("steps", 0, "task", "titel"), "unknown-key", "no titel", key=True) == make(
        "p.yaml", (2, 11), "unknown-key", "no titel")
    assert make("p.yaml", (2, 11), "unknown-key", "m").line == 3
    assert problem_at(doc, ("steps", 0), "escalate-without-due", "m").severity == "warning"
    assert (problem_at(doc, ("steps", 0), "escalate-without-due", "m").line,
            problem_at(doc, ("steps", 0), "escalate-without-due", "m").col) == (2, 5)
    unreadable = file_problem("gone.yaml", "coverage-file", "cannot read", "check the path")
    assert (unreadable.line, unreadable.col, unreadable.severity, unreadable.hint) == (1, 1, "error", "check the path")
    assert severity_of("env-var") == "error"
    with pytest.raises(ValueError, match="'no-such-rule' is not in the catalogue"):
        make("p.yaml", (0, 0), "no-such-rule", "m")
    with pytest.raises(ValueError, match="not in the catalogue"):
        file_problem("p.yaml", "unknown-key-typo", "m")


_ROW = re.compile(r"^\| \[?`([a-z][a-z-]*)`(?:\]\(#[a-z-]+\))? \| (error|warning) \| (.+) \|$")


def test_docs_validation_lists_every_rule_with_its_severity_and_text() -> None:
    text = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    rows = {m[1]: (m[2], m[3].replace("&lt;", "<").replace("&gt;", ">").replace("\\|", "|"))
            for line in text.splitlines() if (m := _ROW.match(line))}
    assert rows == ALL_RULES
