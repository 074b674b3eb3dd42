"""Expressions and templates: the sandboxed Jinja2 environment and static checks of names.

Validation extracts what a text refers to (engine.language.refs: parsing only, cached per text) and checks
every name, attribute chain, filter and test against the documented context of the place the text
is used (SPEC-playbooks.md section 5), with a suggestion for near misses.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined

from engine.language.refs import Ref, SyntaxProblem, expression_refs, template_refs
from engine.language.sandbox import BoundedEnvironment, bound
from engine.language.textfmt import money
from engine.language.workcalendar import Calendar, business_count

# A spec is a dict of known attributes (closed), or None: anything goes below it (custom fields,
# scalars whose own attributes such as date.year we do not police).
Spec = dict[str, Any] | None

_USER: dict[str, Any] = {"id": None, "name": None, "email": None, "first_name": None, "last_name": None,
                         "title": None, "timezone": None, "manager": None}
USER: Spec = _USER
# account.owner also says how the coverage model found an owner the CRM does not name ("" when it does)
OWNER: Spec = {**_USER, "fallback": None}
CONTACT: Spec = {"id": None, "email": None, "first_name": None, "last_name": None, "name": None,
                 "title": None, "role": None, "phone": None}
ACCOUNT: Spec = {
    "id": None, "name": None, "segment": None, "lifecycle_stage": None, "owner": OWNER, "arr": None,
    "renewal_date": None, "contract_start": None, "renewal_status": None,
    "health": {"score": None, "band": None, "previous_score": None}, "usage": None, "fields": None,
}
EVENT: Spec = {"id": None, "type": None, "account_id": None, "occurred_at": None, "data": None}
RUN: Spec = {"id": None, "playbook": None, "version": None, "started_at": None}
STEP: Spec = {"status": None, "result": None}
_LIST_OF_CONTACTS = "contacts"

CONTEXT: dict[str, Any] = {
    "account": ACCOUNT, "contact": CONTACT, "contacts": _LIST_OF_CONTACTS, "trigger": None, "event": EVENT,
    "run": RUN, "steps": "steps", "now": None, "today": None, "days": None, "business_days": None,
}
_WHY_NOT_HERE = {
    "contact": "contact (the recipient) is only defined in email steps",
    "event": "event is only defined in wait_for.where and in an event trigger's where; "
             "after a wait_for, use steps['ID'].result",
    "steps": "steps are not known before the run starts",
    "run": "run is not known before the run starts",
}
_JINJA_GLOBALS = {"range", "dict", "namespace", "cycler", "joiner", "loop", "date"}
_PURE = {"date", "days", "business_days"}  # functions of their arguments only: no condition depends on them
_DATE_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?)?$")


class BusinessDays:
    """``business_days(n)``: n workdays of the calendar (engine.language.workcalendar), added to or taken from a date
    or a datetime. Bound to the run's calendar by engine.language.context.business_days_fn; unbound, the default
    calendar (Monday to Friday, UTC, no holidays)."""

    def __init__(self, n: Any, calendar: Calendar | None = None) -> None:
        self.n, self.calendar = business_count(n), calendar or Calendar()

    def _shift(self, start: Any, n: int) -> Any:
        if isinstance(start, datetime):
            return self.calendar.add_business_days(start, n)
        if isinstance(start, date):
            return self.calendar.shift(start, n)
        return NotImplemented

    def __radd__(self, other: Any) -> Any:
        return self._shift(other, self.n)

    def __add__(self, other: Any) -> Any:
        return self._shift(other, self.n)

    def __rsub__(self, other: Any) -> Any:
        return self._shift(other, -self.n)

    def __repr__(self) -> str:
        return f"business_days({self.n})"


def date_filter(value: Any, fmt: str = "%B %-d, %Y") -> str:
    """``{{ account.renewal_date | date }}`` → ``March 5, 2027``; ISO strings are accepted too."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, date):
        raise ValueError(f"date filter needs a date, got {value!r}")
    return value.strftime(fmt)


def money_filter(value: Any, currency: str = "$") -> str:
    """``{{ account.arr | money }}`` → ``$180,000`` (cents only when there are any); extension."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"money filter needs a number, got {value!r}")
    return money(value, currency[:8])


def to_date(text: str) -> date:
    """``date('2027-01-15')``: a date constant inside an expression (extension)."""
    return date.fromisoformat(text)


def make_env() -> BoundedEnvironment:
    """The sandbox every expression and template runs in: strict undefined, no autoescape, and the
    limits of engine.language.sandbox on size and work."""
    env = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["date"] = date_filter
    env.filters["money"] = money_filter
    env.globals["days"] = lambda n: timedelta(days=n)
    env.globals["business_days"] = BusinessDays
    env.globals["date"] = to_date
    env.day_types = (BusinessDays,)
    return bound(env)


ENV = make_env()


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression at one place may refer to."""

    names: frozenset[str]
    """Root names available here."""
    earlier_steps: frozenset[str] = frozenset()
    """Step ids ``steps.<id>`` may name here (those before the current step)."""
    all_steps: frozenset[str] = frozenset()
    """Every step id of the playbook, to tell "later" from "unknown"."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem inside one expression or template; ``needle`` and ``line`` locate it."""

    rule: str
    message: str
    needle: str | tuple[str, ...] = ""
    """The text to point at (alternatives: the first found wins)."""
    line: int = 0
    hint: str = ""


def is_date_literal(src: str) -> bool:
    """``2027-01-15`` written where a date expression goes means that date, not 2027 minus 16."""
    return bool(_DATE_LITERAL.match(src.strip()))


def check_expression(src: str, scope: Scope, condition: bool = False) -> list[Finding]:
    """Problems of a bare expression; ``condition`` also flags constant ones."""
    if "{{" in src or "{%" in src:
        bare = src.replace("{{", "").replace("}}", "").strip()
        return [Finding("braces-in-expression", "this field is an expression: write it without {{ }}",
                        "{{" if "{{" in src else "{%", 0, f"write: {bare}")]
    if is_date_literal(src):
        return [Finding("constant-condition", "a date is not a condition", src.strip())] if condition else []
    refs = expression_refs(ENV, src)
    if isinstance(refs, SyntaxProblem):
        return [_syntax_finding("expression", refs, src)]
    found = _check_refs(refs, scope)
    if condition and not any(r.kind == "name" and r.name not in _PURE for r in refs):
        found.append(Finding("constant-condition", f"the condition {src.strip()!r} does not depend on anything",
                             src.strip()[:20], 0, "remove the condition, or compare a field of account"))
    return found


def check_template(src: str, scope: Scope) -> list[Finding]:
    """Problems of a template (text with {{ }})."""
    if "{" not in src:
        return []
    refs = template_refs(ENV, src)
    if isinstance(refs, SyntaxProblem):
        return [_syntax_finding("template", refs, src)]
    return _check_refs(refs, scope)


_SYNTAX_HINTS = [
    ("'&'", "use 'and' instead of &&"),
    ("'|'", "use 'or' instead of ||"),
    ("'!'", "use 'not' instead of !, and != to compare"),
    ("'='", "use == to compare"),
    ("'end of print statement'", "quote text values: account.segment == 'smb'"),
]


def _syntax_finding(rule: str, problem: SyntaxProblem, src: str) -> Finding:
    message = problem.message
    hint = next((h for key, h in _SYNTAX_HINTS if key in message), "")
    if not hint and rule == "expression" and re.search(r"(?<![=!<>])=(?!=)", src):
        hint = "use == to compare"
    lines = src.splitlines()
    text_line = lines[problem.line] if problem.line < len(lines) else ""
    needle = text_line.strip()[:30]
    token = re.search(r"unexpected char '(.+?)'|got '(.+?)'|unexpected '(.+?)'", message)
    token_text = ""
    if token:
        text = next(g for g in token.groups() if g)
        if not text.startswith("end of") and text in text_line:
            needle = token_text = text
    if "'}'" in message or "'end of print statement', got '}'" in message:
        hint = hint or "a {{ must be closed with }}"
    literal = re.search(r"(?<![\w'\"])\d{4}-\d{2}-\d{2}(?![\w'\"])", text_line) if rule == "expression" else None
    if literal:
        before = text_line[literal.start() - 1] if literal.start() else ""
        needle = before + "\0" + literal.group(0)  # the bare date, not the same text inside date('...')
        hint = f"inside an expression a date is written date('{literal.group(0)}')"
        message = f"{literal.group(0)} reads as a subtraction here, not as a date"
    elif rule == "template":
        block = _failing_block(text_line)
        if block:
            at = block.rfind(token_text) if token_text and token_text in block else 0
            needle = block[:at] + "\0" + block[at:]
    return Finding(rule, f"{rule} does not compile: {message}", needle, problem.line, hint)


def _failing_block(line: str) -> str:
    """The first {{ }} block of ``line`` that does not parse alone: where a template error is."""
    for m in re.finditer(r"\{\{(.*?)(\}\}|$)", line):
        if not m.group(2) or isinstance(expression_refs(ENV, m.group(1)), SyntaxProblem):
            return m.group(0)
    return ""


def _check_refs(refs: tuple[Ref, ...], scope: Scope) -> list[Finding]:
    found: list[Finding] = []
    tails: set[str] = set()  # steps.risk-alert reads as steps.risk - alert: "alert" is part of that mistake
    unsafe = {r.name for r in refs if r.kind == "unsafe"}
    for ref in refs:
        if ref.kind in ("unsafe", "unbounded"):
            found.append(_limit_finding(ref))
            continue
        if ref.kind == "name":
            if ref.name in _JINJA_GLOBALS or ref.name in tails or ref.name == "lipsum":
                continue
            if unsafe.intersection(map(str, ref.attrs)):  # reported as unsafe-attribute
                continue
            if ref.name == "steps" and ref.attrs and isinstance(ref.attrs[0], str):
                sid = ref.attrs[0].replace("_", "-")
                if sid not in scope.all_steps:
                    for full in scope.all_steps:
                        if full.startswith(sid + "-"):
                            tails |= set(full[len(sid) + 1 :].split("-"))
            if ref.name not in scope.names:
                found.append(_unknown_root(ref, scope))
                continue
            finding = _check_attrs(ref.name, CONTEXT.get(ref.name), ref.attrs, ref.line, scope)
        else:
            table, what = (ENV.filters, "filter") if ref.kind == "filter" else (ENV.tests, "test")
            finding = None
            if ref.name not in table:
                near = difflib.get_close_matches(ref.name, [n for n in table if not n.startswith("_")], n=1)
                finding = Finding("unknown-filter", f'there is no {what} named "{ref.name}"', ref.name, ref.line,
                                  f'did you mean "{near[0]}"?' if near else "")
        if finding:
            found.append(finding)
    return found


def _limit_finding(ref: Ref) -> Finding:
    needles = tuple(str(a) for a in ref.attrs)
    if ref.kind == "unsafe":
        hint = ("a custom field whose name starts with _ is written fields['_name']" if not ref.name.startswith("__")
                else "templates cannot reach Python's internals")
        return Finding("unsafe-attribute", f'"{ref.name}" is not allowed: the sandbox refuses attributes that start '
                       "with _ and Python internals", needles, ref.line, hint)
    return Finding("unbounded-expression", ref.name, needles, ref.line,
                   "use smaller constants: docs/playbook-reference.md lists the limits of expressions and templates")


def _unknown_root(ref: Ref, scope: Scope) -> Finding:
    name = ref.name
    if name in CONTEXT:
        return Finding("unknown-name", _WHY_NOT_HERE.get(name, f'"{name}" is not available here'), name, ref.line)
    near = difflib.get_close_matches(name, sorted(scope.names), n=1)
    hint = f'did you mean "{near[0]}"?' if near else "names here: " + ", ".join(sorted(scope.names))
    return Finding("unknown-name", f'"{name}" is not defined', name, ref.line, hint)


def _check_attrs(name: str, spec: Any, attrs: tuple[str | None, ...], line: int, scope: Scope) -> Finding | None:
    path = name
    for i, attr in enumerate(attrs):
        if attr is None or spec is None:
            return None
        if spec == "steps":
            return _step_ref(str(attr), attrs[i + 1 :], line, scope)
        if spec == _LIST_OF_CONTACTS:
            if attr != "[]":
                return Finding("unknown-name", f'contacts is a list; "{path}.{attr}" does not exist', f".{attr}", line,
                               "use contacts[0].email, or a filter such as "
                               "contacts | selectattr('role', 'eq', 'billing')")
            spec, path = CONTACT, f"{path}[]"
            continue
        if attr == "[]" or attr not in spec:
            shown = "an index" if attr == "[]" else f'"{attr}"'
            near = difflib.get_close_matches(attr, list(spec), n=1) if attr != "[]" else []
            hint = f'did you mean "{path}.{near[0]}"?' if near else f"{path} has: " + ", ".join(spec)
            return Finding("unknown-name", f"{path} has no attribute {shown}",
                           (f"{path}.{attr}", f".{attr}") if attr != "[]" else path, line, hint)
        spec, path = spec[attr], f"{path}.{attr}"
    return None


def _step_needles(ref: str) -> tuple[str, ...]:
    return (f"steps.\0{ref}", f"steps['\0{ref}']", f'steps["\0{ref}"]', ref)


def _step_ref(ref: str, rest: tuple[str | None, ...], line: int, scope: Scope) -> Finding | None:
    sid = ref.replace("_", "-")  # steps.risk_alert names step risk-alert: ids never hold "_"
    if sid not in scope.all_steps:
        prefix = sorted(s for s in scope.all_steps if s.startswith(sid + "-"))
        if prefix:
            hint = f"a step id with hyphens is written steps['{prefix[0]}'] or steps.{prefix[0].replace('-', '_')}"
        else:
            near = difflib.get_close_matches(sid, sorted(scope.all_steps), n=1)
            hint = f'did you mean "{near[0]}"?' if near else "steps.<id> names a step of this playbook"
        return Finding("step-reference", f'there is no step "{sid}"', _step_needles(ref), line, hint)
    if sid not in scope.earlier_steps:
        return Finding("step-reference", f'step "{sid}" has not run yet at this point', _step_needles(ref), line,
                       "steps.<id> can only name a step that comes before this one")
    return _check_attrs(f"steps.{ref}", STEP, rest, line, scope)
