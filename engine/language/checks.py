"""Semantic checks: what the JSON Schema cannot say.

Hooks run where the schema refers to a ``$defs`` entry (a duration, an expression, a party...);
the step-level checks (duplicate ids, unreachable steps) run over the whole steps tree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter

from engine.language import expressions as ex
from engine.language.durations import DurationError, parse_duration
from engine.language.parties import FORMS_HELP, Place, parse_party, why_not
from engine.language.structure import Hook, Walker, label
from engine.language.templatefiles import TemplateProblem, read_template
from engine.language.yamlpos import Path

BUILTIN_EVENTS = (
    "health.updated", "usage.feature_used", "account.updated", "task.completed", "email.replied",
    "email.bounced", "contact.unsubscribed", "account.churned",
)
_READ_ONLY = {
    "id": "the account id cannot be changed",
    "health": "health is computed from health events and cannot be written",
    "usage": "usage is recorded from usage events and cannot be written",
    "fields": "name the custom field: fields.NAME",
}
UPDATABLE = ("name", "segment", "lifecycle_stage", "owner", "arr", "renewal_date", "contract_start", "renewal_status")
_PRE_RUN = frozenset({"account", "contacts", "trigger", "now", "today", "days", "business_days"})
_IN_RUN = _PRE_RUN | {"run", "steps"}


@dataclass
class Context:
    """What the checks learn about one playbook while walking it."""

    step_index: dict[Path, tuple[str, int]] = field(default_factory=dict)
    """Path of each step → (id, position in document order)."""
    step_ids: frozenset[str] = frozenset()
    start_targets: list[tuple[str, Path]] = field(default_factory=list)
    """``start_playbook`` targets and where they are, for the check across files."""
    files: dict[str, str] = field(default_factory=dict)
    """Email template files read while checking (path as written → text), for the compiler."""
    scopes: dict[tuple[Any, ...], ex.Scope] = field(default_factory=dict)
    """Scopes already worked out, by place (one per step and kind of field)."""


def iter_steps(steps: Any, p: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every step of a steps list in document order, nested ones included; tolerates bad shapes."""
    if not isinstance(steps, list):
        return
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        sp = p + (i,)
        yield sp, step
        for key, nested in _nested_lists(step):
            yield from iter_steps(nested, sp + key)


def _nested_lists(step: dict[str, Any]) -> Iterator[tuple[Path, Any]]:
    branch = step.get("branch")
    if isinstance(branch, dict):
        cases = branch.get("cases")
        if isinstance(cases, list):
            for j, case in enumerate(cases):
                if isinstance(case, dict):
                    yield ("branch", "cases", j, "steps"), case.get("steps")
        yield ("branch", "default"), branch.get("default")
    wait_for = step.get("wait_for")
    if isinstance(wait_for, dict):
        yield ("wait_for", "on_timeout"), wait_for.get("on_timeout")


def prepare(w: Walker) -> Context:
    """Index the steps (ids, order) and report duplicate ids before the walk needs them."""
    ctx = Context()
    data = w.doc.data
    seen: dict[str, Path] = {}
    steps = data.get("steps") if isinstance(data, dict) else None
    for n, (sp, step) in enumerate(iter_steps(steps, ("steps",))):
        sid = step.get("id")
        if isinstance(sid, str):
            ctx.step_index[sp] = (sid, n)
            if sid in seen:
                line, col = w.doc.pos(seen[sid] + ("id",))
                w.report(sp + ("id",), "duplicate-step-id", f'step id "{sid}" is already used at {line + 1}:{col + 1}',
                         "step ids must be unique across the whole playbook, nested steps included")
            else:
                seen[sid] = sp
        target = step.get("start_playbook")
        if isinstance(target, str):
            ctx.start_targets.append((target, sp + ("start_playbook",)))
    ctx.step_ids = frozenset(seen)
    return ctx


def scope_for(w: Walker, p: Path) -> ex.Scope:
    """The names an expression at ``p`` may use."""
    ctx: Context = w.ctx
    top = p[0] if p else ""
    if top == "steps":
        current = next((ctx.step_index[p[:n]][1] for n in range(len(p), 1, -1) if p[:n] in ctx.step_index), 1 << 30)
        key: tuple[Any, ...] = (top, current, "email" in p, p[-2:] == ("wait_for", "where"))
    else:
        key = (top, top == "triggers" and "event" in p)
    scope = ctx.scopes.get(key)
    if scope is None:
        scope = ctx.scopes[key] = _scope(ctx, key)
    return scope


def _scope(ctx: Context, key: tuple[Any, ...]) -> ex.Scope:
    top = key[0]
    if top == "triggers":
        return ex.Scope(_PRE_RUN | ({"event"} if key[1] else set()))
    if top == "exit":
        return ex.Scope(_IN_RUN, ctx.step_ids, ctx.step_ids)
    if top != "steps":
        return ex.Scope(_PRE_RUN)
    _, current, in_email, in_where = key
    names = set(_IN_RUN) | ({"contact"} if in_email else set()) | ({"event"} if in_where else set())
    earlier = frozenset(sid for sid, n in ctx.step_index.values() if n < current)
    return ex.Scope(frozenset(names), earlier, ctx.step_ids)


def _report_findings(w: Walker, p: Path, findings: list[ex.Finding]) -> None:
    seen: dict[tuple[str | tuple[str, ...], int], int] = {}
    for f in findings:
        nth = seen[(f.needle, f.line)] = seen.get((f.needle, f.line), -1) + 1  # the 2nd report of x → 2nd x
        w.report(p, f.rule, f.message, f.hint, at=w.doc.find(p, f.needle, f.line, nth))


def _string(w: Walker, value: Any, p: Path, target: dict[str, Any], name: str) -> bool:
    return w.check_type(value, target, p, name)


def check_template(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if _string(w, value, p, target, "template"):
        _report_findings(w, p, ex.check_template(value, scope_for(w, p)))


def check_expression(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if _string(w, value, p, target, "expression") and value.strip():
        _report_findings(w, p, ex.check_expression(value, scope_for(w, p)))
    elif isinstance(value, str):
        w.report(p, "empty-value", f"{label(p)} must not be empty")


def check_condition(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if isinstance(value, (bool, int, float)):
        always = "true" if value else "false"
        w.report(p, "constant-condition", f"{label(p)}: {str(value).lower()} is always {always}",
                 "remove the condition, or write one that reads the account, e.g. account.arr > 10000")
    elif _string(w, value, p, w.defs["expression"], "expression") and value.strip():
        _report_findings(w, p, ex.check_expression(value, scope_for(w, p), condition=True))
    elif isinstance(value, str):
        w.report(p, "empty-value", f"{label(p)} must not be empty")


def check_duration(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if _string(w, value, p, target, "duration"):
        try:
            parse_duration(value)
        except DurationError as exc:
            w.report(p, "duration", str(exc))


def check_event_type(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if not _string(w, value, p, target, "event_type"):
        return
    if not re.search(target["pattern"], value):
        w.report(p, "event-type", f'"{value}" is not an event type', "event types are dotted lower-case names, "
                 "e.g. account.churned or nps.submitted")
        return
    if value in BUILTIN_EVENTS:
        return
    near = difflib.get_close_matches(value, BUILTIN_EVENTS, n=1, cutoff=0.85)
    if near:
        w.report(p, "event-type-typo", f'"{value}" is not a built-in event type; did you mean "{near[0]}"?',
                 "custom event types are fine; rename it if it is a typo")


def party_hook(place: Place) -> Hook:
    def check(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
        if not _string(w, value, p, target, "party"):
            return
        party = parse_party(value)
        if party is None:
            forms = ["owner", "owner.manager", "primary_contact"]
            near = difflib.get_close_matches(value, forms, n=1, cutoff=0.7)
            hint = f'did you mean "{near[0]}"?' if near else f"write one of {FORMS_HELP}"
            if value.startswith("#"):
                hint = "channel names are lower-case letters, digits, '-' and '_'"
            w.report(p, "party", f'"{value}" is not a party', hint)
            return
        reason = why_not(place, party)
        if reason:
            w.report(p, "party-context", f"{value} cannot be used in {label(p)}: {reason}")
    return check


def check_cron(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if not _string(w, value, p, target, "cron"):
        return
    fields = value.split()
    if not value.startswith("@") and len(fields) != 5:
        w.report(p, "cron", f'"{value}" has {len(fields)} fields; cron takes five: minute hour day-of-month month '
                 "day-of-week", 'e.g. "0 9 * * MON" for Mondays at 09:00')
    elif not croniter.is_valid(value) or (value.startswith("@") and value not in _CRON_ALIASES):
        w.report(p, "cron", f'"{value}" is not a valid cron expression',
                 "fields: minute 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, weekday 0-6 or SUN-SAT")


_CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")


@cache
def _zones() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


def check_timezone(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if not _string(w, value, p, target, "timezone"):
        return
    zones = _zones()
    if value in zones.values() or value == "UTC":
        return
    try:
        if "/" in value or value.isupper():
            ZoneInfo(value)
            if value.lower() in zones:
                return
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        pass
    exact = zones.get(value.lower())
    near = [exact] if exact else [z for z in zones.values() if z.lower().endswith("/" + value.lower())][:1]
    near = near or difflib.get_close_matches(value, list(zones.values()), n=1)
    hint = f'did you mean "{near[0]}"?' if near else "use an IANA name such as Europe/Berlin or America/New_York"
    w.report(p, "timezone", f'"{value}" is not an IANA time zone', hint)


def check_date_field(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if not _string(w, value, p, target, "date_field") or re.search(target["pattern"], value):
        return
    near = difflib.get_close_matches(value, ["renewal_date", "contract_start"], n=1, cutoff=0.6)
    hint = f'did you mean "{near[0]}"?' if near else f"a custom date field is written fields.{value}"
    w.report(p, "date-field", f'"{value}" is not a date field of the account', hint)


def check_account_update(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    if not w.check_type(value, target, p):
        return
    if not value:
        w.report(p, "empty-value", "account must list at least one field to update", key=True)
    for key, item in value.items():
        kp = p + (key,)
        if key not in UPDATABLE and not re.match(r"^fields\.[A-Za-z_][A-Za-z0-9_]*$", key):
            near = difflib.get_close_matches(key, UPDATABLE, n=1, cutoff=0.7)
            bare = key.rsplit(".", 1)[-1]
            hint = (_READ_ONLY.get(key) or (f'did you mean "{near[0]}"?' if near else "")
                    or f"custom fields are written fields.{bare}")
            w.report(kp, "update-field", f'"{key}" is not a field of the account', hint, key=True)
            continue
        if w.check_type(item, target["additionalProperties"], kp) and isinstance(item, str):
            _report_findings(w, kp, ex.check_template(item, scope_for(w, kp)))


def check_json_strings(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    before = len(w.problems)
    w.walk(value, target, p)  # the structure first (blocks are a list of objects); then every string
    if len(w.problems) > before:
        return
    _json_templates(w, value, p)


def _json_templates(w: Walker, value: Any, p: Path) -> None:
    if isinstance(value, str):
        _report_findings(w, p, ex.check_template(value, scope_for(w, p)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_templates(w, item, p + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            _json_templates(w, item, p + (key,))


def check_task(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    w.walk(value, target, p, "task")
    if isinstance(value, dict) and value.get("escalate") and "due" not in value and "due_on" not in value:
        w.report(p + ("escalate",), "escalate-without-due", "this task escalates but has no due date",
                 "add due: 5 business days (or due_on) so the assignee sees the deadline the escalation enforces",
                 key=True)


def check_send_window(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    """The schema's form, then what a pattern cannot say: the window closes after it opens."""
    w.walk(value, target, p, "send_window")
    hours = value.get("hours") if isinstance(value, dict) else None
    if isinstance(hours, str) and re.fullmatch(target["properties"]["hours"]["pattern"], hours):
        opening, closing = hours.split("-")
        if closing <= opening:
            w.report(p + ("hours",), "schema", f"send_window hours {hours} close before they open",
                     "write the opening first, e.g. 09:00-17:00 (a window cannot span midnight)")


def check_email(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    w.walk(value, target, p, "email")
    if not isinstance(value, dict) or not isinstance(value.get("template"), str) or not value["template"].strip():
        return
    tp = p + ("template",)
    text = read_template(w.doc.path, value["template"])
    if isinstance(text, TemplateProblem):
        w.report(tp, text.rule, text.message, text.hint)
        return
    w.ctx.files[value["template"]] = text
    for f in ex.check_template(text, scope_for(w, tp)):
        w.report(tp, f.rule, f"in {value['template']} line {f.line + 1}: {f.message}", f.hint)


def check_steps(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
    w.walk(value, target, p, "steps")
    if not isinstance(value, list):
        return
    for i, step in enumerate(value[:-1]):
        if _always_exits(step):
            nxt = value[i + 1]
            nid = nxt.get("id", f"#{i + 2}") if isinstance(nxt, dict) else f"#{i + 2}"
            w.report(p + (i + 1,), "unreachable-step",
                     f'step "{nid}" can never run: step "{step.get("id")}" before it always ends the run',
                     "remove the steps after the exit, or give the exit a when: condition")
            return


def _always_exits(step: Any) -> bool:
    if not isinstance(step, dict) or "when" in step:
        return False
    if "exit" in step:
        return True
    branch = step.get("branch")
    if not isinstance(branch, dict) or not isinstance(branch.get("cases"), list) or "default" not in branch:
        return False
    lists = [c.get("steps") for c in branch["cases"] if isinstance(c, dict)] + [branch["default"]]
    return all(isinstance(s, list) and any(_always_exits(x) for x in s) for s in lists)


HOOKS: dict[str, Hook] = {
    "template": check_template,
    "expression": check_expression,
    "condition": check_condition,
    "duration": check_duration,
    "event_type": check_event_type,
    "party_internal": party_hook("assign"),
    "party_notify": party_hook("notify"),
    "party_recipient": party_hook("recipient"),
    "party_sender": party_hook("sender"),
    "cron": check_cron,
    "timezone": check_timezone,
    "date_field": check_date_field,
    "account_update": check_account_update,
    "json_body": check_json_strings,
    "blocks": check_json_strings,
    "task": check_task,
    "email": check_email,
    "send_window": check_send_window,
    "steps": check_steps,
}
