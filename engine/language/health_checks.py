"""The checks of ``health.yaml`` the schema cannot say, run once its shape is right.

Each finds a mistake a model author makes and says where (line:col), under its own rule id
(``RULES``), with what to do.
"""

from __future__ import annotations

import difflib
from typing import Any

from engine.language.health_model import BUCKETS
from engine.language.problems import CATALOGUE, Problem, problem_at
from engine.language.yamlpos import Document, Path

__all__ = ["RULES", "cross_checks"]

#: The rules of health.yaml beside the playbook validator's (unknown-key, type, missing-key...): all errors
#: (their severity and text are in the one catalogue, engine.language.problems.CATALOGUE).
RULES: dict[str, str] = {rule: text for rule, (_, text) in CATALOGUE["health"].items()}


def cross_checks(doc: Document, data: dict[str, Any]) -> list[Problem]:
    """Problems of a model whose shape the schema walk found right."""
    out: list[Problem] = []
    buckets: dict[str, Any] = data["buckets"]
    owner: dict[str, str] = {}
    for bname, bucket in buckets.items():
        for mname, measure in bucket["measures"].items():
            if mname in owner:
                out.append(problem_at(doc, ("buckets", bname, "measures", mname), "duplicate-measure",
                                      f'measure "{mname}" is also in bucket {owner[mname]}',
                                      "measure names are unique across the model: rename one", key=True))
            owner.setdefault(mname, bname)
            out.extend(_mapping(doc, ("buckets", bname, "measures", mname), measure))
    out.extend(_weights(doc, data, owner))
    bands = data["bands"]
    if bands["red_below"] >= bands["yellow_below"]:
        out.append(problem_at(doc, ("bands", "yellow_below"), "band-order",
                              f"yellow_below ({bands['yellow_below']}) must be above red_below ({bands['red_below']})",
                              "a score below red_below is red, below yellow_below yellow: e.g. red_below: 40, "
                              "yellow_below: 70"))
    for i, override in enumerate(data.get("overrides") or ()):
        if not override.get("segment") and not override.get("lifecycle_stage"):
            out.append(problem_at(doc, ("overrides", i), "override-match",
                                  "this override names neither segment nor lifecycle_stage, so it applies to every "
                                  "account", "add segment: or lifecycle_stage:, or change the weights in buckets:"))
        for mname in override.get("measures") or {}:
            if mname not in owner:
                near = difflib.get_close_matches(mname, list(owner), n=1, cutoff=0.6)
                out.append(problem_at(doc, ("overrides", i, "measures", mname), "unknown-measure",
                                      f'override names measure "{mname}", which the model does not have',
                                      f'did you mean "{near[0]}"?' if near else "measures: " + ", ".join(owner),
                                      key=True))
        for bname in override.get("buckets") or {}:
            if bname not in buckets:
                out.append(problem_at(doc, ("overrides", i, "buckets", bname), "unknown-measure",
                                      f"override weighs bucket {bname}, which the model does not have",
                                      "add the bucket under buckets: or remove it here", key=True))
    return out


def _mapping(doc: Document, p: Path, measure: dict[str, Any]) -> list[Problem]:
    out = []
    span = measure.get("range")
    if span is not None and span["from"] == span["to"]:
        out.append(problem_at(doc, (*p, "range", "to"), "range",
                              f"from and to are both {span['to']}: the line is empty",
                              "from is the value of 0 points, to the value of 100 points"))
    steps = measure.get("thresholds") or []
    for i, step in enumerate(steps):
        low, high = step.get("at_least"), step.get("at_most")
        if low is not None and high is not None and low > high:
            out.append(problem_at(doc, (*p, "thresholds", i), "thresholds",
                                  f"at_least {low} is above at_most {high}: this step never holds",
                                  "swap them, or keep one"))
        if low is None and high is None and i < len(steps) - 1:
            out.append(problem_at(doc, (*p, "thresholds", i + 1), "thresholds",
                                  f"step {i + 1} holds for every value, so this step and those after it never count",
                                  "put the step without at_least/at_most last"))
            break
    return out


def _weights(doc: Document, data: dict[str, Any], owner: dict[str, str]) -> list[Problem]:
    out: list[Problem] = []
    buckets: dict[str, Any] = data["buckets"]
    total = data.get("weights_total")
    base_b = {b: float(v.get("weight", 1)) for b, v in buckets.items()}
    base_m = {b: {m: float(x.get("weight", 1)) for m, x in v["measures"].items()} for b, v in buckets.items()}
    checks: list[tuple[Path, str, dict[str, float]]] = [(("buckets",), "the bucket weights", base_b)]
    checks += [(("buckets", b, "measures"), f"the measure weights of {b}", base_m[b]) for b in buckets]
    for i, override in enumerate(data.get("overrides") or ()):
        if override.get("buckets"):
            mine = {**base_b, **{k: float(v) for k, v in override["buckets"].items() if k in base_b}}
            checks.append((("overrides", i, "buckets"), f"the bucket weights of override {i + 1}", mine))
        touched = {owner[m] for m in override.get("measures") or {} if m in owner}
        for b in sorted(touched, key=BUCKETS.index):
            mine = {**base_m[b], **{k: float(v) for k, v in override["measures"].items() if owner.get(k) == b}}
            checks.append((("overrides", i, "measures"), f"the {b} measure weights of override {i + 1}", mine))
    for p, what, weights in checks:
        summed = sum(weights.values())
        if summed <= 0:
            out.append(problem_at(doc, p, "no-weight", f"{what} are all 0, so nothing counts",
                                  "give at least one a weight above 0", key=True))
        elif total is not None and abs(summed - float(total)) > 1e-9:
            parts = " + ".join(f"{k} {_num(v)}" for k, v in weights.items())
            out.append(problem_at(doc, p, "weights-total", f"{what} add up to {_num(summed)} ({parts}), not "
                                  f"weights_total {_num(float(total))}",
                                  "change them so they add up, or remove weights_total to make weights relative",
                                  key=True))
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
