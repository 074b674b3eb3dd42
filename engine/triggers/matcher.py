"""Which trigger of a playbook fires for a signal, and whether a run starts: pure, no I/O.

``decide`` answers one signal for one (playbook, account); ``explain`` says for ``csops explain``
where each condition stands now. The inputs and answers are in engine/triggers/signals.py. Checks run in
this order: a trigger fires → the playbook is enabled → audience (segments, lifecycle stages,
``when``) → no active run → the occurrence was not started before → cooldown over → start.

Rules where the spec leaves room (the user docs repeat them):

- The first trigger in document order that fires is the one reported; other triggers that fired
  too are listed in ``seen["also_matched"]``. A trigger whose ``where`` fails to evaluate is
  reported (``expression_error``) only when no other trigger fires.
- A disabled playbook answers ``disabled`` only when a trigger fired, so a paused playbook does not
  record a suppression for every event.
- ``health_drop below: N`` fires when the previous score is >= N and the new one < N; with no
  previous score there is no crossing. ``by: N within: W`` fires when the new score is at least N
  below the highest score in force during ``[occurred_at - W, occurred_at]`` (the score at the
  window's start counts) and the previous score was not yet N below it: like ``below`` it fires
  on the way down, not again for every update while the score stays down. ``to_band`` fires when
  the new band equals ``to_band`` and the previous band was better (green < yellow < red), so
  green → red does not fire ``to_band: yellow``.
- ``contract_milestone``: the milestone day is the date minus (before) or plus (after) N days, or N
  workdays of the calendar with ``business_days`` (engine.language.workcalendar); "today" is the local date
  in the calendar's zone. A scan fires it when ``since < milestone day <= today``. An
  ``account.updated`` that changes the field fires at once when the new milestone day is today or
  has passed by at most N days (for ``days_before``: the date itself is not past), or when the
  daily scan has already covered it (``Facts.last_scan``: the scan will not look at that day again,
  even if this "today" is behind the scan's); a milestone day still ahead of both is left to the
  daily scan. So an edit after the scan and the scan never both miss a day; when both see it, the
  occurrence key (the date) or the active run lets only one start.
- ``lifecycle_change`` listens to ``account.updated`` events that change ``lifecycle_stage``; the
  old stage comes from the event's ``previous``.
- A ``schedule`` trigger matches a tick with the same cron expression and time zone.
- A ``DirectStart`` (a ``start_playbook`` step, or a person's forced start of a playbook without a
  ``manual`` trigger; engine/triggers/door.py) matches no trigger: it fires as trigger index -1 with
  ``trigger.type`` its ``via``, and every other check applies as usual.
- Occurrence: a person's ``ManualStart.occurrence`` wins, then ``entry.key`` evaluated (dates as
  ISO text, None as no key), then the trigger's default: the date value (contract_milestone), the
  feature or product name (new_usage), the tick time in UTC (schedule), else "" (no key).
- ``explain``: a date trigger passes when today's scan would fire it (the milestone day is today),
  a health trigger when the latest change (``previous_score`` → the account's score) fires it; the
  other triggers wait for an event, a tick or a person ("waiting"), and a ``new_usage`` trigger
  fails once the account has used that feature (``account.usage`` holds it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, date
from typing import Any

from engine.language.context import Calendar, business_days_fn, evaluate, to_eval
from engine.language.model import (
    ContractMilestone,
    EventTrigger,
    HealthDrop,
    LifecycleChange,
    Manual,
    NewUsage,
    Playbook,
    Schedule,
    Trigger,
)
from engine.language.textfmt import count
from engine.payloads.runtypes import run_id_for
from engine.triggers.evalmemo import Memo
from engine.triggers.healthdrop import health
from engine.triggers.signals import (
    Decision,
    DirectStart,
    EventSignal,
    Facts,
    ManualStart,
    Probe,
    Reason,
    Scan,
    Signal,
    Tick,
    TriggerRef,
    as_date,
    describe,
    key_text,
    lookup,
    mapping,
    number,
    own_json,
)
from engine.triggers.whenfilter import holds as numbers_hold


def decide(playbook: Playbook, signal: Signal, facts: Facts, memo: Memo | None = None) -> Decision | None:
    """Whether ``signal`` starts a run of ``playbook`` for the account; None when no trigger fires.

    ``memo`` (engine/triggers/evalmemo.py) remembers expression results and milestone probes over a
    scan's accounts; the answer is the same with or without it.
    """
    fired: list[tuple[int, Probe]] = []
    failed: list[tuple[int, Probe]] = []
    for i, trig in enumerate(playbook.triggers):
        probe = probe_trigger(trig, signal, facts, memo)
        if probe is not None and probe.error:
            failed.append((i, probe))
        elif probe is not None and probe.fires:
            fired.append((i, probe))
    if isinstance(signal, DirectStart):  # no trigger of the playbook to match: the rules below still apply
        fired, failed = [(-1, Probe(True, signal.why or f"started by {signal.via}", dict(signal.details)))], []
    if not fired and not failed:
        return None
    index, probe = (fired or failed)[0]
    kind, said = ((signal.via, signal.via) if isinstance(signal, DirectStart)
                  else (playbook.triggers[index].kind, describe(playbook.triggers[index])))
    trigger_data: dict[str, Any] = {"type": kind, "index": index, **probe.seen}
    if isinstance(signal, EventSignal):
        trigger_data["event"] = signal.as_dict()
    seen: dict[str, Any] = {"trigger": said, "why": probe.why, **probe.seen}
    if len(fired) > 1:
        seen["also_matched"] = [i for i, _ in fired[1:]]
    # Only entry.key and audience.when read the context, and it is built when one of them is evaluated:
    # a memo that answers from the account's values alone (a scan's usual case) never needs it.
    ev = evaluator(facts, trigger_data, signal if isinstance(signal, EventSignal) else None, memo)
    occurrence, key_error = occurrence_of(playbook, signal, probe, ev)
    seen["occurrence"] = occurrence
    run_id, ref = run_id_for(playbook.id, signal.account_id, occurrence), trigger_ref(index, kind)

    def answer(reason: Reason, message: str) -> Decision:
        return Decision(outcome="start" if reason == "started" else "suppressed", reason=reason, message=message,
                        playbook=playbook.id, account_id=signal.account_id, trigger=ref, occurrence=occurrence,
                        run_id=run_id, trigger_data=own_json(trigger_data), seen=own_json(seen))

    if probe.error:
        return answer("expression_error", f"suppressed: {probe.error}")
    if not playbook.enabled:
        return answer("disabled", "suppressed: the playbook is disabled (enabled: false)")
    refused = _audience(playbook, facts.account, seen, ev)
    if refused is not None:
        return answer(*refused)
    if key_error:
        return answer("expression_error", f"suppressed: {key_error}")
    seen["active_run"] = facts.active_run
    if facts.active_run:
        return answer("already_active", f"suppressed: a run is already active ({facts.active_run})")
    if occurrence and occurrence in facts.started_keys:
        return answer("duplicate_occurrence",
                      f"suppressed: a run for occurrence {occurrence} was already started ({run_id})")
    cooldown = playbook.entry.cooldown
    if cooldown is not None and facts.last_run_ended_at is not None:
        until = facts.calendar.add(facts.last_run_ended_at, cooldown)
        seen["cooldown_until"] = until.isoformat()
        if facts.now < until:
            return answer("cooldown", f"suppressed: cooldown {cooldown.text} after the last run, which ended "
                          f"{facts.last_run_ended_at.isoformat()}; no new run before {until.isoformat()}")
    return answer("started", f"start {run_id}: {said}: {probe.why}")


def probe_trigger(trig: Trigger, signal: Signal, facts: Facts, memo: Memo | None = None) -> Probe | None:
    """How ``trig`` stands against ``signal``; None when the trigger does not listen to that signal."""
    if isinstance(signal, Scan):
        if not isinstance(trig, ContractMilestone):
            return None
        value = lookup(facts.account, trig.field)[1]
        if memo is None or type(value) not in (str, date, type(None)):  # a datetime's zone would not be in the key
            return milestone(trig, value, facts.calendar, signal.today, since=signal.since)
        return memo.probe((id(trig), type(value), value, facts.calendar, signal.today, signal.since),  # type: ignore[no-any-return]
                          milestone, trig, value, facts.calendar, signal.today, signal.since)
    if isinstance(signal, Tick):
        if not (isinstance(trig, Schedule) and (trig.cron, trig.timezone) == (signal.cron, signal.timezone)):
            return None
        tick = signal.at.astimezone(UTC).isoformat()
        return Probe(True, f"the schedule ticked at {tick}", {"cron": trig.cron, "timezone": trig.timezone,
                                                             "tick": tick}, key=tick)
    if isinstance(signal, DirectStart):
        return None
    if isinstance(signal, ManualStart):
        if not isinstance(trig, Manual):
            return None
        return Probe(True, f"started by {signal.by or 'a person'}", {"by": signal.by})
    return _on_event(trig, signal, facts)


def _on_event(trig: Trigger, ev: EventSignal, facts: Facts) -> Probe | None:
    fields = mapping(ev.data.get("fields")) if ev.type == "account.updated" else {}
    if isinstance(trig, EventTrigger):
        return _event(trig, ev, facts) if trig.type == ev.type else None
    if isinstance(trig, HealthDrop) and ev.type == "health.updated":
        score = number(ev.data.get("score"))
        band = ev.data.get("band") or mapping(facts.account.get("health")).get("band")
        return None if score is None and trig.to_band is None else health(trig, score, band, facts, ev.occurred_at)
    if isinstance(trig, NewUsage) and ev.type == "usage.feature_used":
        what, want = ("feature", trig.feature) if trig.feature is not None else ("product", trig.product)
        name = ev.data.get(what)
        if not name or (want != "*" and name != want):
            return None
        first = facts.first_feature_use if what == "feature" else facts.first_product_use
        why = f"first use of {what} {name}" if first else f"{what} {name} was used before"
        return Probe(first, why, {what: name, "first_use": first}, key=str(name))
    if isinstance(trig, LifecycleChange):
        present, new = lookup(fields, "lifecycle_stage")
        had, old = lookup(ev.previous, "lifecycle_stage")
        if not present:
            return None
        fires = new == trig.to and (not had or old != new)
        if trig.from_stage is not None:  # an unknown old stage cannot be the one required
            fires = fires and had and old == trig.from_stage
        return Probe(fires, f"the lifecycle stage changed from {old if had else 'unknown'} to {new}",
                     {"stage": new, "previous_stage": old if had else None})
    if isinstance(trig, ContractMilestone):
        present, new = lookup(fields, trig.field)
        if not present:
            return None
        had, old = lookup(ev.previous, trig.field)
        if had and as_date(old) == as_date(new):
            return Probe(False, f"{trig.field} did not change", {"field": trig.field, "date": new})
        return milestone(trig, new, facts.calendar, today_of(facts), since=None, scanned=facts.last_scan)
    return None


def _event(trig: EventTrigger, ev: EventSignal, facts: Facts) -> Probe:
    seen: dict[str, Any] = {"event_type": ev.type, "event_id": ev.id}
    if not trig.where:
        return Probe(True, f"a {ev.type} event arrived", seen)
    ctx = context(facts, {"type": "event", "event_type": ev.type}, ev)
    try:
        holds = bool(evaluate(trig.where, ctx))
    except Exception as exc:  # noqa: BLE001 - an author's expression must not stop the matcher
        return Probe(False, "", seen, error=expression_error("where", trig.where, exc))
    seen["where"] = holds
    return Probe(holds, f"a {ev.type} event arrived and where {trig.where} is {'true' if holds else 'false'}",
                 seen)


def milestone(trig: ContractMilestone, value: Any, calendar: Calendar, today: date, since: date | None,
              scanned: date | None = None) -> Probe:
    """A date trigger for a scan of ``(since, today]``, or for an edit of the field (``since`` None).

    For an edit, ``scanned`` is the last day the daily scan covered: a milestone day up to it is
    never scanned again, so the edit fires it even when this "today" is behind the scan's (a
    clock, or a time zone, that has not reached the scan's day yet).
    """
    day = as_date(value)
    seen: dict[str, Any] = {"field": trig.field, "date": day.isoformat() if day else value}
    if day is None:
        what = "empty" if value in (None, "") else f"not a date ({value!r})"
        return Probe(False, f"{trig.field} is {what}", seen)
    n = trig.days_before if trig.days_before is not None else trig.days_after or 0
    due = shift(day, -n if trig.days_before is not None else n, trig.business_days, calendar)
    if due is None:
        return Probe(False, f"{trig.field} is {day}: the milestone day is out of range", seen)
    away = (due - today).days
    seen.update(milestone_day=due.isoformat(), days_to_milestone=away, days_to_date=(day - today).days)
    text = f"{trig.field} is {day}, the milestone day is {due}"
    if since is None and scanned is not None and today < due <= scanned:
        return Probe(True, f"{text}: the edit makes it due now (the daily scan already covered {scanned})", seen,
                     key=day.isoformat())
    if due > today:
        return Probe(False, f"{text}, {count(away, 'day')} from today", seen, key=day.isoformat())
    if since is not None:
        if due > since:
            late = "today" if due == today else f"{count(-away, 'day')} ago (caught up)"
            return Probe(True, f"{text}: due {late}", seen, key=day.isoformat())
        return Probe(False, f"{text}, {count(-away, 'day')} ago (an earlier scan covered it)", seen,
                     key=day.isoformat())
    last = day if trig.days_before is not None else shift(due, n, trig.business_days, calendar)
    if last is not None and today <= last:
        late = "today" if away == 0 else f"{count(-away, 'day')} ago"
        return Probe(True, f"{text}: the edit makes it due now (the milestone day was {late})", seen,
                     key=day.isoformat())
    return Probe(False, f"{text}, {count(-away, 'day')} ago: too late to fire for this date", seen,
                 key=day.isoformat())


def shift(day: date, n: int, business: bool, calendar: Calendar) -> date | None:
    """``day`` moved by ``n`` days, or by ``n`` workdays of the calendar (``Calendar.move``); None past
    the year 9999."""
    try:
        return calendar.move(day, n, business)
    except OverflowError:
        return None


def _audience(playbook: Playbook, account: Mapping[str, Any], seen: dict[str, Any],
              ev: Callable[[str], Any]) -> tuple[Reason, str] | None:
    aud = playbook.audience
    segment, stage = account.get("segment"), account.get("lifecycle_stage")
    seen.update(segment=segment, lifecycle_stage=stage)
    if aud.segments and segment not in aud.segments:
        return "audience_segment", (f"suppressed: segment is {segment!r}, not one of the audience segments "
                                    f"({', '.join(aud.segments)})")
    if aud.lifecycle_stages and stage not in aud.lifecycle_stages:
        return "audience_stage", (f"suppressed: lifecycle stage is {stage!r}, not one of the audience stages "
                                  f"({', '.join(aud.lifecycle_stages)})")
    if aud.when:
        try:
            # A comparison of numbers is answered without Jinja (engine/triggers/whenfilter.py): the same answer.
            holds = numbers_hold(aud.when, account)
            if holds is None:
                holds = bool(ev(aud.when))
        except Exception as exc:  # noqa: BLE001 - an author's expression must not stop the matcher
            return "expression_error", f"suppressed: {expression_error('audience.when', aud.when, exc)}"
        seen["audience_when"] = holds
        if not holds:
            return "audience_when", f"suppressed: audience.when {aud.when} is false for this account"
    return None


def occurrence_of(playbook: Playbook, signal: Signal, probe: Probe, ev: Callable[[str], Any]) -> tuple[str, str]:
    """The occurrence key and, when ``entry.key`` failed, the error."""
    if isinstance(signal, ManualStart | DirectStart) and signal.occurrence:
        return signal.occurrence, ""
    if playbook.entry.key:
        try:
            return key_text(ev(playbook.entry.key)), ""
        except Exception as exc:  # noqa: BLE001 - an author's expression must not stop the matcher
            return probe.key, expression_error("entry.key", playbook.entry.key, exc)
    return probe.key, ""


def context(facts: Facts, trigger: dict[str, Any], event: EventSignal | None) -> dict[str, Any]:
    """What ``where``, ``audience.when`` and ``entry.key`` see (SPEC section 5, before a run)."""
    ctx = {"account": account_seen(facts.account), "contacts": [dict(c) for c in facts.contacts], "trigger": trigger,
           "now": facts.now, "today": today_of(facts), "business_days": business_days_fn(facts.calendar)}
    if event is not None:
        ctx["event"] = event.as_dict()
    return ctx


def account_seen(account: Mapping[str, Any]) -> dict[str, Any]:
    """``account`` as expressions see it: a copy, its dates as dates."""
    try:
        seen: dict[str, Any] = to_eval({"account": account})["account"]
        return seen
    except ValueError:  # a malformed date stays text; an expression comparing it then reports the error
        return dict(account)


def evaluator(facts: Facts, trigger: dict[str, Any], event: EventSignal | None,
               memo: Memo | None) -> Callable[[str], Any]:
    """``evaluate(src, context(...))``, the context built once, when first needed; with a memo, an
    expression that reads only the account is answered from the account alone when it can be."""
    built: list[dict[str, Any]] = []

    def full() -> dict[str, Any]:
        if not built:
            built.append(context(facts, trigger, event))
        return built[0]

    if memo is None:
        return lambda src: evaluate(src, full())
    accounts: list[dict[str, Any]] = []

    def account() -> dict[str, Any]:
        if built:
            return built[0]
        if not accounts:
            accounts.append({"account": account_seen(facts.account)})
        return accounts[0]

    return lambda src: memo.evaluate(src, full, account)


@functools.lru_cache(maxsize=256)
def trigger_ref(index: int, kind: str) -> TriggerRef:
    """The ``TriggerRef`` of (index, kind): one shared object each, as a scan makes thousands (it is frozen)."""
    return TriggerRef(index=index, kind=kind)


def expression_error(where: str, src: str, exc: Exception) -> str:
    """An expression that failed for this account, in plain words."""
    return (f"{where} {src} could not be evaluated for this account ({exc}); fix the expression or fill in the "
            "missing data")


def today_of(facts: Facts) -> date:
    """The day ``facts.now`` falls on in the calendar's time zone (``Calendar.today``)."""
    return facts.calendar.today(facts.now)
