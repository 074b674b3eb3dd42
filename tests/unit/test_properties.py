"""Property tests: whatever the input, the validator returns problems and never raises.

Four generators, 2,400 examples in all: random text with YAML punctuation, random structures
built from the language's own words, text mutations of real playbooks, and data mutations of real
playbooks. The last one also checks that csops never accepts what a plain JSON Schema validator
rejects, so an editor using the published schema never flags a playbook csops calls clean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.language.structure import SCHEMA_FILE
from engine.language.validate import FileResult, check_text
from tests.conftest import ROOT

SOURCES = [*sorted(p for p in (ROOT / "playbooks").glob("*.yaml")
                  if p.name != "coverage.yaml" and not p.name.endswith(".test.yaml")),
           ROOT / "tests" / "data" / "spec-example.yaml"]
TEXTS = [p.read_text(encoding="utf-8") for p in SOURCES]
DATA = [yaml.safe_load(t) for t in TEXTS]
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)

WORDS = sorted({
    "playbook", "title", "triggers", "steps", "id", "when", "task", "alert", "email", "wait", "wait_for", "branch",
    "cases", "default", "update", "account", "note", "http", "start_playbook", "exit", "outcome", "assign", "due",
    "escalate", "after", "notify", "to", "from", "subject", "body", "timeout", "on_timeout", "event", "where",
    "health_drop", "below", "by", "within", "contract_milestone", "field", "days_before", "schedule", "cron",
    "timezone", "manual", "owner", "owner.manager", "#cs-risk", "primary_contact", "5 business days", "30d",
    "{{ account.name }}", "account.arr > 5", "true", "null", "[", "]", "{", "}", ":", "-", "&a", "*a", "<<", "|",
    "'", '"', "\t", "\n", "  ", "P5D", "0 9 * * MON", "Europe/Berlin", "Europe/Berln", "PST", "steps.x.status",
    "{% for %}",
})
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


EXAMPLES = [0]


def checked(text: str) -> FileResult:
    EXAMPLES[0] += 1
    result = check_text(text, "<generated>")
    internal = [p.message for p in result.problems if p.rule == "internal-error"]
    assert internal == [], internal
    for p in result.problems:
        assert p.line >= 1 and p.col >= 1 and p.message
    return result


@SETTINGS
@given(st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=40).map(" ".join))
def test_random_text_never_raises(text: str) -> None:
    checked(text)


json_leaf = st.none() | st.booleans() | st.integers(-10, 200) | st.sampled_from(WORDS) | st.text(max_size=12)
json_value = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(WORDS), children, max_size=5),
    max_leaves=30,
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(WORDS), json_value, max_size=6))
def test_random_structures_never_raise(data: dict[str, Any]) -> None:
    checked(yaml.safe_dump(data, allow_unicode=True))


@SETTINGS
@given(st.sampled_from(range(len(TEXTS))), st.data())
def test_mutated_playbook_text_never_raises(index: int, draw: st.DataObject) -> None:
    lines = TEXTS[index].splitlines()
    for _ in range(draw.draw(st.integers(1, 3))):
        at = draw.draw(st.integers(0, len(lines) - 1))
        how = draw.draw(st.sampled_from(["delete", "duplicate", "insert", "indent", "dedent", "truncate"]))
        if how == "delete" and len(lines) > 1:
            del lines[at]
        elif how == "duplicate":
            lines.insert(at, lines[at])
        elif how == "insert":
            col = draw.draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:col] + draw.draw(st.sampled_from(WORDS)) + lines[at][col:]
        elif how == "indent":
            lines[at] = "  " + lines[at]
        elif how == "dedent":
            lines[at] = lines[at][2:]
        else:
            lines[at] = lines[at][: draw.draw(st.integers(0, len(lines[at])))]
    checked("\n".join(lines) + "\n")


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, prefix + (i,)))
    return out


@SETTINGS
@given(st.sampled_from(range(len(DATA))), st.data())
def test_mutated_playbook_data_never_raises_and_agrees_with_the_schema(index: int, draw: st.DataObject) -> None:
    data = json.loads(json.dumps(DATA[index]))
    path = draw.draw(st.sampled_from(_paths(data)[1:]))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    how = draw.draw(st.sampled_from(["replace", "delete", "add-key"]))
    if how == "replace":
        parent[path[-1]] = draw.draw(json_value)
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw.draw(st.sampled_from(WORDS))] = draw.draw(json_value)
    result = checked(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    schema_errors = [e.message for e in VALIDATOR.iter_errors(data)]
    csops_errors = [p for p in result.problems if p.severity == "error"]
    if schema_errors:
        assert csops_errors, f"csops accepted what the JSON Schema rejects: {schema_errors}"


def test_property_runs_cover_at_least_2000_examples() -> None:
    # runs after the four property tests above (pytest keeps file order); counts inputs really checked
    assert EXAMPLES[0] >= 2000


def test_alias_bomb_and_deep_nesting_are_problems_not_crashes() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    assert [p.rule for p in checked(bomb).problems] == ["yaml-syntax"]
    assert [p.rule for p in checked("[" * 5000 + "]" * 5000).problems] == ["yaml-syntax"]
    assert "refers to itself" in checked("a: &a [*a]\n").problems[0].message


def test_non_utf8_and_control_characters(tmp_path: Path) -> None:
    from engine.language.validate import validate_paths
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"playbook: caf\xe9\n")
    problems = validate_paths([str(bad)]).problems
    assert [(p.rule, p.line, p.col) for p in problems] == [("yaml-syntax", 1, 14)]
    assert [p.rule for p in checked("title: a\x07b\n").problems] == ["yaml-syntax"]
