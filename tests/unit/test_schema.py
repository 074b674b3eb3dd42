"""The published schema: valid 2020-12, documented for editors, and in agreement with csops."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine.language.structure import SCHEMA_FILE
from engine.language.validate import validate_paths
from tests.conftest import ROOT

SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SHIPPED = sorted(p for p in (ROOT / "playbooks").glob("*.yaml")
                 if p.name not in ("coverage.yaml", "health.yaml") and not p.name.endswith(".test.yaml"))


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"].startswith("https://")
    Draft202012Validator.check_schema(SCHEMA)


def _properties(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every (location, subschema) found under a "properties" keyword, anywhere in the schema."""
    found = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.append((f"{where}/properties/{name}", sub))
        for key, value in node.items():
            found.extend(_properties(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_properties(value, f"{where}/{i}"))
    return found


def test_every_property_has_a_description() -> None:
    props = _properties(SCHEMA)
    assert len(props) > 80  # the walk really reaches the nested definitions
    missing = []
    for where, sub in props:
        target = sub
        if "description" not in sub and "$ref" in sub:
            target = SCHEMA["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
        if "description" not in target:
            missing.append(where)
    assert missing == []


def test_closed_objects_reject_unknown_keys() -> None:
    objects = [d for d in SCHEMA["$defs"].values() if d.get("type") == "object" and "properties" in d]
    assert objects and all(d.get("additionalProperties") is False for d in objects)


@pytest.mark.parametrize("enum_path", [("task", "priority"), ("email", "category"), ("exit_step", "outcome")])
def test_closed_sets_are_enums(enum_path: tuple[str, str]) -> None:
    defn, prop = enum_path
    assert "enum" in SCHEMA["$defs"][defn]["properties"][prop]


def test_shipped_playbooks_exist() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"renewal-reminders", "health-drop-risk", "new-usage-expansion", "smb-onboarding-tech-touch"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_playbook_passes_a_plain_json_schema_validator(path: Any) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/playbook.schema.json\n")
    errors = [e.message for e in Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(text))]
    assert errors == []


def test_shipped_playbooks_are_clean_under_csops_validate() -> None:
    report = validate_paths([str(ROOT / "playbooks")], json_schema=True)
    assert [f"{p.path}:{p.line}:{p.col} {p.rule} {p.message}" for p in report.problems] == []
    assert set(report.playbooks) >= {"renewal-reminders", "health-drop-risk", "new-usage-expansion",
                                     "smb-onboarding-tech-touch"}


def test_a_plain_validator_also_rejects_what_csops_rejects_structurally() -> None:
    bad = yaml.safe_load("playbook: x\ntitle: t\ntriggers: [{manual: {}}]\nsteps: [{id: a, taks: {title: t}}]\n")
    assert list(Draft202012Validator(SCHEMA).iter_errors(bad))
