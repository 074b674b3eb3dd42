"""Reading ``health.yaml``: every problem as ``health.yaml:LINE:COL`` with a rule id and a hint.

The file goes through the playbook validator's machinery: the position-keeping loader
(engine.language.yamlpos), the schema walker (engine.language.structure) driven by ``schemas/health.schema.json``
(unknown keys with did-you-mean, types, ranges, one source kind per measure), then the checks the
schema cannot say (engine.language.health_checks): weights that must add up, band cut-offs in order,
overrides naming measures the model has.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from engine.language.health_checks import cross_checks
from engine.language.health_model import (
    BUCKETS,
    SOURCE_KINDS,
    Bands,
    Bucket,
    HealthModel,
    Measure,
    Missing,
    Override,
    Range,
    Source,
    Threshold,
)
from engine.language.problems import Problem, problem_at
from engine.language.schemafiles import parsed_schema, schema_file
from engine.language.structure import Hook, Walker, describe, walk_top_level
from engine.language.yamlpos import Document, Path, load, read_checked

__all__ = ["HEALTH_NAMES", "SCHEMA_FILE", "check_health", "health_beside", "health_schema",
           "load_health", "parse_health"]

SCHEMA_FILE = schema_file("health.schema.json")
HEALTH_NAMES = ("health.yaml", "health.yml")
"""The health model may live beside the playbooks; it is not a playbook."""
_FIELD = re.compile(r"^(arr|renewal_date|contract_start|fields\.[A-Za-z_][A-Za-z0-9_]*|usage\.[A-Za-z0-9_.-]+)$")
_FIELDS = ("arr", "renewal_date", "contract_start")


def health_schema() -> dict[str, Any]:
    """The health schema, parsed once per process."""
    return parsed_schema("health.schema.json")


def load_health(path: str | os.PathLike[str]) -> tuple[HealthModel | None, list[Problem]]:
    """Read and check a health model file: the model (None when there is any problem) and every problem."""
    return read_checked(path, check_health, rule="health-file", what="the health model",
                        hint="check the path (csops looks for health.yaml beside the playbooks)")


def parse_health(text: str, path: str = "health.yaml") -> tuple[HealthModel | None, list[Problem]]:
    """Check health model text as if read from ``path``, like :func:`load_health`."""
    return check_health(load(text, path))


def health_beside(folder: str | os.PathLike[str]) -> str | None:
    """The health model file in a playbook folder, or None."""
    for name in HEALTH_NAMES:
        path = os.path.join(os.fspath(folder), name)
        if os.path.isfile(path):
            return path
    return None


def check_health(doc: Document) -> tuple[HealthModel | None, list[Problem]]:
    """The model and every problem of a parsed health document."""
    problems = list(doc.problems)
    data = doc.data
    if data is None and not problems:
        problems.append(problem_at(doc, (), "health-file", "the health model is empty",
                                   "start with buckets: and bands: (docs/health.md has a full example)"))
    if not isinstance(data, dict):
        if data is not None:
            problems.append(problem_at(doc, (), "type", f"the health model must be a mapping (key: value "
                                       f"lines), found {describe(data)}", "start with buckets: and bands:"))
        return None, problems
    schema = health_schema()
    walker = Walker(doc, _HOOKS)
    problems.extend(walk_top_level(walker, doc, data, schema, "the health model"))
    for key in schema["required"]:
        if key not in data:
            problems.append(problem_at(doc, (), "missing-key", f'the health model is missing "{key}"',
                                       "docs/health.md shows a full model"))
    if not problems:
        problems.extend(cross_checks(doc, data))
    problems = sorted(dict.fromkeys(problems), key=Problem.sort_key)
    if problems:
        return None, problems
    return typed(data, doc.path, hashlib.sha256(doc.text.encode()).hexdigest()[:12]), []


def _account_field(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p) or _FIELD.match(value):
        return
    bare = value.removeprefix("account.")
    guess = bare if _FIELD.match(bare) else f"fields.{bare}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", bare) else ""
    walker.flagged.append(p)  # health-field is this file's own rule, not the playbook catalogue's
    walker.problems.append(problem_at(walker.doc, p, "health-field", f'"{value}" is not an account field with a number',
                                      f'did you mean "{guess}"?' if guess else
                                      "write arr, renewal_date, contract_start, fields.NAME or usage.NAME"))


def _event_type(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p) or re.match(schema["pattern"], value):
        return
    guess = re.sub(r"[^a-z0-9_.]+", "_", value.strip().lower()).strip("._")
    hint = (f'did you mean "{guess}"?' if re.match(schema["pattern"], guess)
            else "event types are dotted lower-case names, e.g. usage.login or support.escalated")
    walker.report(p, "event-type", f'"{value}" is not an event type', hint)


def _window(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p) or re.match(schema["pattern"], value):
        return
    days = re.match(r"^\s*(\d+)\s*(d|days?)?\s*$", str(value))
    walker.report(p, "duration", f'within "{value}" is not a window in days',
                  f'write it as "{int(days.group(1))}d"' if days and 0 < int(days.group(1)) < 1000
                  else "e.g. within: 30d (1 to 999 days)")


_HOOKS: dict[str, Hook] = {"account_field": _account_field, "event_type": _event_type, "window": _window}


def _missing(raw: Any, default: Missing) -> Missing:
    if raw is None:
        return default
    if raw == "skip":
        return Missing()
    key, number = next(iter(raw.items()))
    return Missing(mode=key, number=float(number))


def _source(raw: dict[str, Any]) -> Source:
    kind = next(k for k in SOURCE_KINDS if k in raw)
    if kind == "features_used":
        return Source(kind=kind, features=tuple(raw[kind]))
    return Source(kind=kind, name=str(raw[kind]), per=str(raw.get("per") or ""), value=str(raw.get("value") or ""),
                  days=int(str(raw.get("within") or "30d")[:-1]))


def typed(data: dict[str, Any], path: str = "", version: str = "") -> HealthModel:
    """The model from checked data (every value is known to be of the right form)."""
    default = _missing(data.get("missing"), Missing())
    buckets = []
    for name in BUCKETS:
        raw = data["buckets"].get(name)
        if raw is None:
            continue
        measures = tuple(
            Measure(name=mname, bucket=name, source=_source(m["source"]), weight=float(m.get("weight", 1)),
                    thresholds=tuple(Threshold(points=float(t["points"]), at_least=t.get("at_least"),
                                               at_most=t.get("at_most")) for t in m.get("thresholds") or ()),
                    range=Range(start=float(m["range"]["from"]), end=float(m["range"]["to"])) if "range" in m else None,
                    missing=_missing(m.get("missing"), default), description=str(m.get("description") or ""))
            for mname, m in raw["measures"].items())
        buckets.append(Bucket(name=name, weight=float(raw.get("weight", 1)), measures=measures))
    overrides = tuple(
        Override(segment=str(o.get("segment") or "").casefold(), lifecycle_stage=str(o.get("lifecycle_stage") or
                                                                                   "").casefold(),
                 buckets=tuple((k, float(v)) for k, v in (o.get("buckets") or {}).items()),
                 measures=tuple((k, float(v)) for k, v in (o.get("measures") or {}).items()))
        for o in data.get("overrides") or ())
    bands = Bands(red_below=float(data["bands"]["red_below"]), yellow_below=float(data["bands"]["yellow_below"]))
    return HealthModel(name=str(data.get("model") or "health"), buckets=tuple(buckets), bands=bands,
                       overrides=overrides, source=path, version=version)
