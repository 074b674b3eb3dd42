"""Explain: why each of a playbook's triggers would or would not start a run for an account today
(csops explain, GET /v1/accounts/{id}/explain), check by check, with the matcher's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from engine.language.context import evaluate
from engine.language.model import (
    ContractMilestone,
    EventTrigger,
    HealthDrop,
    LifecycleChange,
    NewUsage,
    Playbook,
    Schedule,
    Trigger,
)
from engine.triggers.healthdrop import health
from engine.triggers.matcher import context, expression_error, milestone
from engine.triggers.signals import (
    Check,
    Facts,
    State,
    TriggerRef,
    as_date,
    describe,
    jsonable,
    key_text,
    lookup,
    mapping,
    number,
)


def explain(playbook: Playbook, facts: Facts, today: date) -> list[Check]:
    """For ``csops explain``: would each trigger start a run today, and how the other conditions stand."""
    checks = [Check(name="enabled", state="pass" if playbook.enabled else "fail",
                    text="enabled" if playbook.enabled else "disabled (enabled: false): no trigger starts a run")]
    for i, trig in enumerate(playbook.triggers):
        state, why, seen = _explain_trigger(trig, facts, today)
        checks.append(Check(name=f"trigger {i + 1}", state=state, text=f"{describe(trig)}: {why}",
                            seen=jsonable(seen), trigger=TriggerRef(index=i, kind=trig.kind)))
    ctx = context(facts, {"type": "explain"}, None)
    aud, account = playbook.audience, facts.account
    for name, value, allowed in (("segments", account.get("segment"), aud.segments),
                                 ("lifecycle_stages", account.get("lifecycle_stage"), aud.lifecycle_stages)):
        ok = not allowed or value in allowed
        checks.append(Check(name=f"audience.{name}", state="pass" if ok else "fail", seen={"value": jsonable(value)},
                            text=f"{name[:-1].replace('_', ' ')} is {value!r}; allowed: {', '.join(allowed) or 'any'}"))
    if aud.when:
        checks.append(_explain_expression("audience.when", aud.when, ctx, lambda v: bool(v),
                                          lambda v: f"audience.when {aud.when} is {'true' if v else 'false'}"))
    active = facts.active_run
    checks.append(Check(name="active run", state="fail" if active else "pass", seen={"active_run": active},
                        text=f"a run is already active ({active})" if active else "no run is active"))
    checks.extend(_explain_keys(playbook, facts, ctx))
    checks.append(_explain_cooldown(playbook, facts))
    return checks


def _explain_trigger(trig: Trigger, facts: Facts, today: date) -> tuple[State, str, dict[str, Any]]:
    account = facts.account
    if isinstance(trig, ContractMilestone):
        p = milestone(trig, lookup(account, trig.field)[1], facts.calendar, today, since=today - timedelta(days=1))
        return ("pass" if p.fires else "fail"), p.why, p.seen
    if isinstance(trig, HealthDrop):
        data = mapping(account.get("health"))
        score = number(data.get("score"))
        if score is None and trig.to_band is None:
            return "fail", "the account has no health score", {}
        p = health(trig, score, data.get("band"), facts, facts.now)
        return ("pass" if p.fires else "fail"), p.why, p.seen
    if isinstance(trig, NewUsage):
        what, want = ("feature", trig.feature) if trig.feature is not None else ("product", trig.product)
        usage = mapping(account.get("usage"))
        used = bool(usage) if want == "*" else want in usage
        target = f"a {what} never used before" if want == "*" else f"{what} {want}"
        return (("fail" if used and want != "*" else "waiting"),
                f"starts when a usage.feature_used event for {target} arrives; the account has used "
                f"{what + 's' if want == '*' else 'it'} before: {'yes' if used else 'no'}", {"used_before": used})
    if isinstance(trig, LifecycleChange):
        stage = account.get("lifecycle_stage")
        source = f" from {trig.from_stage}" if trig.from_stage else ""
        return "waiting", f"starts when the lifecycle stage changes to {trig.to}{source}; it is now {stage}", {
            "stage": stage}
    if isinstance(trig, EventTrigger):
        return "waiting", f"starts when a {trig.type} event arrives for the account", {}
    if isinstance(trig, Schedule):
        try:
            zone = ZoneInfo(trig.timezone)
            tick = croniter(trig.cron, facts.now.astimezone(zone)).get_next(datetime).isoformat()
        except (ValueError, KeyError, ZoneInfoNotFoundError):
            return "waiting", "starts on each tick (the next tick could not be worked out)", {}
        return "waiting", f"starts on each tick; the next is {tick}", {"next_tick": tick}
    return "waiting", "starts when a person starts it from the CLI or the API", {}


def _explain_expression(name: str, src: str, ctx: dict[str, Any], ok: Callable[[Any], bool],
                        text: Callable[[Any], str]) -> Check:
    try:
        value = evaluate(src, ctx)
    except Exception as exc:  # noqa: BLE001 - an author's expression must not stop explain
        return Check(name=name, state="error", text=expression_error(name, src, exc))
    return Check(name=name, state="pass" if ok(value) else "fail", text=text(value), seen={"value": jsonable(value)})


def _explain_keys(playbook: Playbook, facts: Facts, ctx: dict[str, Any]) -> list[Check]:
    def verdict(v: Any) -> str:
        key = key_text(v)
        if not key:
            return "it is empty: no key, so only the active-run rule and the cooldown apply"
        return f"it is {key}; " + ("a run for it was already started" if key in facts.started_keys
                                   else "no run was started for it yet")

    if playbook.entry.key:
        return [_explain_expression("entry key", playbook.entry.key, ctx,
                                    lambda v: key_text(v) not in facts.started_keys,
                                    lambda v: f"entry.key {playbook.entry.key}: {verdict(v)}")]
    checks = []
    for trig in playbook.triggers:
        if isinstance(trig, ContractMilestone):
            day = as_date(lookup(facts.account, trig.field)[1])
            key = day.isoformat() if day else ""
            checks.append(Check(name="entry key", state="fail" if key in facts.started_keys else "pass",
                                text=f"default key of {describe(trig)}, the date: {verdict(key)}",
                                seen={"occurrence": key}))
    return checks or [Check(name="entry key", state="pass", text="no entry key: only the active-run rule and "
                            "the cooldown limit new runs (new_usage: one run per feature or product)")]


def _explain_cooldown(playbook: Playbook, facts: Facts) -> Check:
    cooldown, ended = playbook.entry.cooldown, facts.last_run_ended_at
    if cooldown is None:
        return Check(name="cooldown", state="pass", text="no cooldown")
    if ended is None:
        return Check(name="cooldown", state="pass", text=f"cooldown {cooldown.text}: no earlier run has ended")
    until = facts.calendar.add(ended, cooldown)
    ok = facts.now >= until
    return Check(name="cooldown", state="pass" if ok else "fail", seen={"cooldown_until": until.isoformat()},
                 text=f"cooldown {cooldown.text}: the last run ended {ended.isoformat()}, so no new run before "
                      f"{until.isoformat()}" + (" (over)" if ok else ""))
