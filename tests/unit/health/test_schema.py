"""schemas/health.schema.json: valid Draft 2020-12, a description on every property, the shipped model valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from engine.health import load_health

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "schemas" / "health.schema.json").read_text(encoding="utf-8"))


def _properties(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
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


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def test_every_property_has_a_description() -> None:
    props = _properties(SCHEMA)
    assert len(props) > 35
    missing = [where for where, sub in props if "description" not in sub
               and "description" not in SCHEMA["$defs"].get(sub.get("$ref", "#/").rsplit("/", 1)[-1], {})]
    assert missing == []


def test_shipped_model_is_valid_for_csops_and_a_plain_validator() -> None:
    model, problems = load_health(ROOT / "playbooks" / "health.yaml")
    assert problems == [] and model is not None and len(model.measures) == 10
    data = yaml.safe_load((ROOT / "playbooks" / "health.yaml").read_text(encoding="utf-8"))
    assert list(Draft202012Validator(SCHEMA).iter_errors(data)) == []


def test_a_plain_validator_also_rejects_an_unknown_key_and_a_source_without_kind() -> None:
    validator = Draft202012Validator(SCHEMA)
    measure: dict[str, Any] = {"source": {"count": "usage.login"}, "range": {"from": 0, "to": 9}}
    base = {"buckets": {"usage": {"measures": {"x": measure}}}, "bands": {"red_below": 40, "yellow_below": 70}}
    assert list(validator.iter_errors(base)) == []
    assert list(validator.iter_errors({**base, "bandz": {}}))
    measure["source"] = {"within": "30d"}
    assert list(validator.iter_errors(base))


def test_the_example_model_of_the_docs_is_valid() -> None:
    import re

    from engine.health import parse_health

    text = (ROOT / "docs" / "health.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(model: default-health\n.*?)```", text, re.S)
    assert example is not None
    model, problems = parse_health(example.group(1))
    assert problems == [] and model is not None and [m.name for m in model.measures] == [
        "logins_30d", "seat_utilisation", "days_since_meeting", "escalations_90d"]
