"""Structural checks driven by ``schemas/playbook.schema.json``.

A plain JSON Schema validator says *that* a document is wrong; ops authors need to know *where*
and *what to type instead*. This walker interprets the subset of JSON Schema the playbook schema
uses (type, properties, additionalProperties, required, enum, pattern, min/max, oneOf, not,
dependentRequired, $ref) and reports each violation once, at the right key, with a suggestion.
Semantic checks hook in by ``$defs`` name (``duration``, ``expression``, ...), so the schema stays
the one source of truth for structure.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from engine.language.problems import Problem, make
from engine.language.schemafiles import parsed_schema, schema_file
from engine.language.yamlpos import Document, Path

SCHEMA_FILE = schema_file("playbook.schema.json")

Hook = Callable[["Walker", Any, Path, dict[str, Any]], None]

_TYPE_WORDS = {
    "string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping (key: value lines)", "null": "nothing",
}
#: Rule ids for a missing or doubled choice of keys, by the $defs name of the object.
_CHOICE_RULES = {"step": "step-action", "trigger": "trigger-kind"}
_MISSING_RULES = {("wait_for", "timeout"): "wait-for-timeout"}
_MISSING_HINTS = {
    ("wait_for", "timeout"): "a wait_for without timeout can wait forever; add timeout: 14d (and on_timeout steps)",
    ("step", "id"): "every step needs an id such as id: send-welcome",
}
_PATTERN_RULES = {"id": "id-format", "name": "id-format"}
_PATTERN_WORDS = {"id": "is not a valid id", "name": "is not a valid name"}


def load_schema() -> dict[str, Any]:
    """The playbook schema, parsed once per process."""
    return parsed_schema("playbook.schema.json")


_JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object"}


def json_type(value: Any) -> str:
    """The JSON Schema type name of a loaded YAML value."""
    known = _JSON_TYPES.get(type(value))
    if known is not None:
        return known
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def describe(value: Any) -> str:
    """A value as a message shows it: ``the number 90``, ``text "ninety"``, ``a list``."""
    kind = json_type(value)
    if kind == "null":
        return "nothing (the value is empty)"
    if kind == "string":
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'text "{shown}"'
    if kind in ("integer", "number"):
        return f"the number {value}"
    if kind == "boolean":
        return f"{str(value).lower()}"
    return "a list" if kind == "array" else "a mapping"


def label(p: Path) -> str:
    """How a message names the value at ``p``: its key, or ``item N of KEY``."""
    if not p:
        return "the playbook"
    last = p[-1]
    if isinstance(last, int):
        parent = next((str(k) for k in reversed(p[:-1]) if isinstance(k, str)), "the list")
        return f"item {last + 1} of {parent}"
    return str(last)


class _Facts:
    """What the walker needs of one subschema, read once: the schema never changes in a process."""

    __slots__ = ("choice_groups", "choice_of", "choices", "enum", "exclusive", "extra", "extra_facts", "items",
                 "needs", "prop_facts", "props", "ref", "required", "schema", "types")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        ref = schema.get("$ref")
        self.ref: str | None = ref.rsplit("/", 1)[-1] if ref else None
        types = schema.get("type")
        self.types: frozenset[str] | None = None if types is None else frozenset(
            [types] if isinstance(types, str) else types)
        if self.types is not None and "number" in self.types:
            self.types |= {"integer"}
        self.enum: list[Any] | None = schema.get("enum")
        one_of: list[dict[str, Any]] = schema.get("oneOf") or []
        is_choice = bool(one_of) and all(set(b) == {"required"} for b in one_of)
        self.choices: list[dict[str, Any]] | None = one_of if one_of and not is_choice else None
        self.choice_groups: list[list[str]] = [b["required"] for b in one_of] if is_choice else []
        self.choice_of: dict[str, int] = {k: i for i, g in enumerate(self.choice_groups) for k in g}
        self.props: dict[str, Any] = schema.get("properties", {})
        self.extra: Any = schema.get("additionalProperties", True)
        self.required: list[str] = schema.get("required", [])
        self.exclusive: list[str] | None = schema.get("not", {}).get("required")
        self.needs: dict[str, list[str]] = schema.get("dependentRequired", {})
        # children's facts once, here: $refs are not followed, so this ends even for recursive schemas
        self.prop_facts: dict[str, _Facts] = {k: _facts(v) for k, v in self.props.items()}
        self.extra_facts: _Facts | None = _facts(self.extra) if isinstance(self.extra, dict) else None
        items = schema.get("items")
        self.items: _Facts | None = _facts(items) if isinstance(items, dict) else None


_FACTS: dict[int, _Facts] = {}


def _facts(schema: dict[str, Any]) -> _Facts:
    facts = _FACTS.get(id(schema))
    if facts is None or facts.schema is not schema:
        facts = _FACTS[id(schema)] = _Facts(schema)
    return facts


class Walker:
    """Walks one document against the schema, collecting problems."""

    def __init__(self, doc: Document, hooks: dict[str, Hook], ctx: Any = None) -> None:
        self.doc = doc
        self.hooks = hooks
        self.ctx = ctx
        self.defs: dict[str, Any] = load_schema()["$defs"]
        self.problems: list[Problem] = []
        self.flagged: list[Path] = []

    def report(self, p: Path, rule: str, message: str, hint: str = "", *, at: tuple[int, int] | None = None,
               key: bool = False) -> None:
        """Record a problem for the value at ``p`` (at its key when ``key``)."""
        self.flagged.append(p)
        if p in self.doc.flagged:
            return
        pos = at if at is not None else (self.doc.key_pos(p) if key else self.doc.pos(p))
        self.problems.append(make(self.doc.path, pos, rule, message, hint))

    def run(self) -> list[Problem]:
        self.walk(self.doc.data, load_schema(), ())
        return self.problems

    def walk(self, value: Any, schema: dict[str, Any], p: Path, name: str = "") -> None:
        """Check ``value`` against ``schema``; ``name`` is the $defs name being checked, if any."""
        self._walk(value, _facts(schema), p, name)

    def _walk(self, value: Any, facts: _Facts, p: Path, name: str = "") -> None:
        schema = facts.schema
        if facts.ref:
            name = facts.ref
            target = self.defs[name]
            hook = self.hooks.get(name)
            if hook:
                hook(self, value, p, target)
            else:
                self._walk(value, _facts(target), p, name)
            return
        choices = facts.choices
        if choices:
            branch = self._pick(value, choices)
            if branch is None:
                wanted = " or ".join(dict.fromkeys(_TYPE_WORDS[t] for b in choices for t in self._types(b)))
                self.report(p, "type", f"{label(p)} must be {wanted}, found {describe(value)}", _type_hint(value, name))
                return
            self.walk(value, branch, p, name)
            return
        if facts.types is not None and _JSON_TYPES.get(type(value)) not in facts.types:
            self.check_type(value, schema, p, name)
            return
        if facts.enum is not None and value not in facts.enum:
            self._enum(value, facts.enum, p)
            return
        if isinstance(value, dict):
            self._object(value, facts, p, name)
        elif isinstance(value, list):
            self._array(value, facts, p)
        elif isinstance(value, str):
            self._string(value, schema, p, name)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number(value, schema, p)

    def check_type(self, value: Any, schema: dict[str, Any], p: Path, name: str = "") -> bool:
        """Report a type mismatch; True when the value has an allowed type (or no type is set)."""
        types = schema.get("type")
        if types is None:
            return True
        allowed = [types] if isinstance(types, str) else list(types)
        actual = json_type(value)
        if actual in allowed or (actual == "integer" and "number" in allowed):
            return True
        wanted = " or ".join(_TYPE_WORDS[t] for t in allowed)
        self.report(p, "type", f"{label(p)} must be {wanted}, found {describe(value)}", _type_hint(value, name))
        return False

    def _types(self, schema: dict[str, Any]) -> list[str]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
        t = schema.get("type", [])
        return [t] if isinstance(t, str) else list(t)

    def _pick(self, value: Any, choices: list[dict[str, Any]]) -> dict[str, Any] | None:
        actual = json_type(value)
        for branch in choices:
            types = self._types(branch)
            if actual in types or (actual == "integer" and "number" in types):
                return branch
        return None

    def _enum(self, value: Any, options: list[Any], p: Path) -> None:
        shown = ", ".join(str(o) for o in options)
        by_lower = {str(o).lower(): str(o) for o in options}
        near = difflib.get_close_matches(str(value).lower(), list(by_lower), n=1, cutoff=0.5)
        hint = f'did you mean "{by_lower[near[0]]}"?' if near else ""
        self.report(p, "unknown-value", f"{label(p)} must be one of {shown}; found {describe(value)}", hint)

    def _object(self, value: dict[str, Any], facts: _Facts, p: Path, name: str) -> None:
        schema = facts.schema
        props, extra = facts.props, facts.extra
        unknown: list[str] = []
        for key in value:
            if extra is False and key not in props:
                unknown.append(key)
                near = difflib.get_close_matches(key, list(props), n=1, cutoff=0.6)
                hint = (f'did you mean "{near[0]}"?' if near else "allowed here: " + ", ".join(props) if props
                        else f"{label(p)} takes no settings: write {label(p)}: {{}}")
                self.report(p + (key,), "unknown-key", f'unknown key "{key}" in {label(p)}', hint, key=True)
        close = {m for k in unknown for m in difflib.get_close_matches(k, list(props), n=1, cutoff=0.6)}
        for req in facts.required:
            if req not in value and req not in close:
                rule = _MISSING_RULES.get((name, req), "missing-key")
                hint = _MISSING_HINTS.get((name, req), "")
                self.report(p, rule, f'{label(p)} is missing "{req}"', hint, key=True)
        if facts.choice_groups:
            present = {facts.choice_of[k] for k in value if k in facts.choice_of}
            if len(present) != 1:
                self._choice(value, facts.choice_groups, p, name, close)
        exclusive = facts.exclusive
        if exclusive and all(k in value for k in exclusive):
            self.report(p + (exclusive[-1],), "exclusive-keys",
                        f"give {' or '.join(exclusive)}, not both", key=True)
        for key, needs in facts.needs.items():
            for need in needs:
                if key in value and need not in value and need not in close:
                    self.report(p + (key,), "missing-key", f'"{key}" needs "{need}" beside it in {label(p)}', key=True)
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.report(p, "empty-value", f"{label(p)} must not be empty", key=True)
        names = schema.get("propertyNames")
        prop_facts, extra_facts = facts.prop_facts, facts.extra_facts
        for key, item in value.items():
            sub = prop_facts.get(key)
            if sub is not None:
                self._walk(item, sub, p + (key,))
            elif extra_facts is not None:
                if names and not re.match(names.get("pattern", ""), key):
                    self.report(p + (key,), "unknown-key", f'"{key}" is not allowed as a key in {label(p)}', key=True)
                    continue
                self._walk(item, extra_facts, p + (key,))

    def _choice(self, value: dict[str, Any], groups: list[list[str]], p: Path, name: str, close: set[str]) -> None:
        present = [g for g in groups if any(k in value for k in g)]
        rule = _CHOICE_RULES.get(name)
        options = ", ".join(" + ".join(g) for g in groups)
        if not present:
            if close & {k for g in groups for k in g}:
                return  # the unknown key already says "did you mean" one of them
            what = {"step": "a step needs one action", "trigger": "a trigger needs one kind"}.get(
                name, f"{label(p)} needs one of")
            self.report(p, rule or "missing-key", f"{what}: {options}", key=True)
        elif len(present) > 1:
            first, second = present[0][0], next(k for k in present[1] if k in value)
            what = {"step": "a step has exactly one action", "trigger": "a trigger has exactly one kind"}.get(
                name, f"{label(p)} takes only one of {options}")
            hint = {"step": "split it into separate steps", "trigger": "split it into separate triggers"}.get(
                name, f'keep one of "{first}" and "{second}"')
            self.report(p + (second,), rule or "exclusive-keys", f'{what}; found "{first}" and "{second}"', hint,
                        key=True)

    def _array(self, value: list[Any], facts: _Facts, p: Path) -> None:
        if len(value) < facts.schema.get("minItems", 0):
            self.report(p, "empty-value", f"{label(p)} must not be empty", key=True)
        items = facts.items
        if items is not None:
            for i, item in enumerate(value):
                self._walk(item, items, p + (i,))

    def _string(self, value: str, schema: dict[str, Any], p: Path, name: str) -> None:
        if "minLength" in schema and len(value.strip()) < schema["minLength"]:
            self.report(p, "empty-value", f"{label(p)} must not be empty")
        elif "maxLength" in schema and len(value) > schema["maxLength"]:
            self.report(p, "out-of-range", f"{label(p)} is longer than {schema['maxLength']} characters")
        elif "pattern" in schema and not re.search(schema["pattern"], value):
            rule = _PATTERN_RULES.get(name, "schema")
            what = _PATTERN_WORDS.get(name, "does not have the required form")
            self.report(p, rule, f'{label(p)} "{value}" {what}', _form_hint(name, value))

    def _number(self, value: float, schema: dict[str, Any], p: Path) -> None:
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            self.report(p, "out-of-range", f"{label(p)} must be {bounds}; found {value}")


def walk_top_level(walker: Walker, doc: Document, data: dict[str, Any], schema: dict[str, Any],
                   what: str) -> list[Problem]:
    """Walk each top-level key of a document other than a playbook (csops.yaml, coverage.yaml, the
    health model) against its schema's properties; an unknown key is reported with a did-you-mean.
    Returns the unknown-key problems, then the walk's own (``walker.problems``)."""
    walker.defs = schema["$defs"]
    props: dict[str, Any] = schema["properties"]
    problems = []
    for key, value in data.items():
        if key in props:
            walker.walk(value, props[key], (key,))
            continue
        near = difflib.get_close_matches(key, list(props), n=1, cutoff=0.6)
        problems.append(make(doc.path, doc.key_pos((key,)), "unknown-key", f'unknown key "{key}" in {what}',
                             f'did you mean "{near[0]}"?' if near else "allowed here: " + ", ".join(props)))
    return problems + walker.problems


def _type_hint(value: Any, name: str) -> str:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return "remove the quotes around the number"
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return "write true or false without quotes"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name in ("duration", "wait"):
        return f"add a unit: {value}d, {value}h or {value} business days"
    if isinstance(value, (int, float, bool)) and name in ("template", "id"):
        return f'quote it: "{value}"'
    if value is None:
        return "give a value after the colon, or remove the key"
    return ""


def _form_hint(name: str, value: str) -> str:
    if name == "id":
        fixed = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
        fixed = fixed if fixed and fixed[0].isalpha() else "step-" + fixed
        return f"ids are lower-kebab-case (letters, digits, hyphens), e.g. {fixed}"
    if name == "name":
        return "use letters, digits, '_', '-' or '.' (no spaces)"
    return ""
