"""What starts a simulated run: the triggering event and the trigger matcher's decision.

A real event start (engine/triggers/ingest.py) first applies the event's facts to the account (a
``health.updated`` sets the score and keeps the old one as the previous score; an
``account.updated`` writes its fields), then asks the matcher (engine/triggers/matcher.py ``decide``), whose
``trigger_data`` the run sees as ``trigger``: ``type`` (the trigger's kind), ``index``, what the
trigger saw, and ``event`` (the event as ``where`` saw it). A simulation does the same with the
event given (``--trigger-event``, a test case's ``trigger:``), so ``trigger.event.data.*`` renders
as it would in production. Without one: date triggers due on the start day fire as the daily scan
would; a playbook whose first trigger waits for an event gets a default event made from that
trigger and the account; else a manual start; else the run starts directly.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Account, Contact
from engine.errors import CsopsError
from engine.language import model as m
from engine.language.context import Calendar
from engine.triggers.signals import EventSignal, Facts, ManualStart, Scan, lookup

EVENT_KINDS = (m.EventTrigger, m.HealthDrop, m.NewUsage, m.LifecycleChange)
"""Triggers that wait for an event."""


class TriggerEventError(CsopsError, ValueError):
    """The triggering event cannot be used; the message says what to fix."""


@dataclass(frozen=True, kw_only=True)
class Start:
    """How the simulated run starts."""

    trigger: dict[str, Any]
    """What the run sees as ``trigger`` (the matcher's ``trigger_data``)."""
    occurrence: str
    """The occurrence key (part of the run id)."""
    note: str
    """What the matcher said, in plain words (the timeline's ``trigger:`` line)."""
    defaulted: str = ""
    """Set when the run got a default event because none was given: which one."""
    changes: dict[str, Any] = field(default_factory=dict)
    """Account fields the event's facts changed before the run started."""


def parse_trigger_event(raw: Mapping[str, Any], account_id: str, at: datetime) -> EventSignal:
    """The triggering event as the matcher reads it; ``id``, ``account_id``, ``occurred_at`` may be left out.

    Raises:
        TriggerEventError: not an event (SPEC section 8), or one for another account.
    """
    from engine.triggers.ingest_facts import parse_event, validate_event

    if not isinstance(raw, Mapping):
        raise TriggerEventError("the trigger event must be a mapping such as {type: health.updated, data: {score: 42}}")
    obj = {"id": "sim-trigger", "account_id": account_id, "occurred_at": at.isoformat().replace("+00:00", "Z"),
           **raw}
    if obj["account_id"] != account_id:
        raise TriggerEventError(f"the trigger event is for account {obj['account_id']!r}, the simulation for "
                                f"{account_id!r}: leave account_id out")
    problems = validate_event(obj)
    if problems:
        raise TriggerEventError("the trigger event: " + "; ".join(problems))
    return parse_event(obj)


def read_trigger_event(text: str) -> dict[str, Any]:
    """``--trigger-event``: inline JSON (``{"type": ...}``) or a YAML/JSON file holding one event.

    Raises:
        TriggerEventError: neither valid JSON nor a readable file of one mapping; says where.
    """
    import os

    import yaml

    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TriggerEventError(f"--trigger-event: not valid JSON at line {exc.lineno} column {exc.colno}: "
                                    f"{exc.msg}") from None
        where = "--trigger-event"
    elif os.path.isfile(text):
        try:
            data = yaml.safe_load(Path(text).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            raise TriggerEventError(f"{text}{at}: not valid YAML or JSON: {getattr(exc, 'problem', exc)}") from None
        except OSError as exc:
            raise TriggerEventError(f"{text}: cannot read: {exc.strerror or exc}") from None
        where = text
    else:
        raise TriggerEventError(f"--trigger-event {text!r:.60}: neither a file nor a JSON object such as "
                                "'{\"type\": \"health.updated\", \"data\": {\"score\": 42}}'")
    if not isinstance(data, dict):
        raise TriggerEventError(f"{where}: expected one event, a mapping with type: and data:")
    return data


def default_event(pb: m.Playbook, acc: Account, at: datetime) -> EventSignal | None:
    """An event the playbook's first trigger waits for, made from the trigger and the account (None
    when the first trigger does not wait for an event)."""
    trig = pb.triggers[0] if pb.triggers else None
    data: dict[str, Any] = {}
    previous: dict[str, Any] = {}
    if isinstance(trig, m.EventTrigger):
        kind = trig.type
    elif isinstance(trig, m.HealthDrop):
        kind = "health.updated"
        score = acc.health_score if acc.health_score is not None else max((trig.below or 1) - 1, 0)
        data = {"score": score, **({"band": acc.health_band} if acc.health_band else {})}
    elif isinstance(trig, m.NewUsage):
        kind = "usage.feature_used"
        data = {"feature": trig.feature if trig.feature not in (None, "*") else "a-feature"}
        if trig.product is not None:
            data["product"] = trig.product if trig.product != "*" else "a-product"
    elif isinstance(trig, m.LifecycleChange):
        kind = "account.updated"
        data = {"fields": {"lifecycle_stage": trig.to}}
        previous = {"lifecycle_stage": trig.from_stage}
    else:
        return None
    return EventSignal(id="sim-trigger", type=kind, account_id=acc.id, occurred_at=at, data=data, previous=previous)


def event_facts(ev: EventSignal, acc: Account) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What an event changes on the account before triggers are matched (engine/triggers/ingest_facts.py):
    the account changes, the matcher's extra facts, and the old values of changed fields."""
    from engine.payloads.runcontext import account_data

    changes: dict[str, Any] = {}
    extra: dict[str, Any] = {"first_feature_use": True, "first_product_use": True}
    previous: dict[str, Any] = {}
    if ev.type == "health.updated":
        extra.update(previous_score=acc.health_score, previous_band=acc.health_band)
        changes["health_score"] = round(float(ev.data["score"]))
        if ev.data.get("band"):
            changes["health_band"] = ev.data["band"]
        if acc.health_score is not None:
            changes["previous_health_score"] = round(acc.health_score)
    elif ev.type == "account.updated":
        data = account_data(acc, None)
        for name, value in dict(ev.data["fields"]).items():
            found, old = (True, acc.owner_id) if name in ("owner", "owner_id") else lookup(data, name)
            if found:
                previous[name] = old
            changes[name] = value
    return changes, extra, previous


def decide_start(pb: m.Playbook, acc: Account, contacts: Sequence[Contact], begin: datetime, calendar: Calendar,
                 event: EventSignal | None, extra: Mapping[str, Any]) -> Start:
    """How the run starts for the account as it is after the event's facts (see the module doc).

    Raises:
        TriggerEventError: the given event matches no trigger of the playbook, or its ``where``
            cannot be evaluated for it.
    """
    from engine.payloads.runcontext import account_data, contact_data
    from engine.triggers.matcher import decide

    facts = Facts(account=account_data(acc, None), now=begin, calendar=calendar,
                  contacts=tuple(contact_data(c) for c in contacts), **extra)
    if event is not None:
        return _by_event(pb, event, facts, given=True)
    today = begin.astimezone(calendar.zone).date()
    found = decide(pb, Scan(account_id=acc.id, since=today - timedelta(days=1), today=today), facts)
    if found is not None and found.reason != "expression_error":
        return _said(found)
    made = default_event(pb, acc, begin)
    if made is not None:
        # The account as given is the account after the event: its previous score is the one before.
        facts = dataclasses.replace(facts, previous_score=acc.previous_health_score, first_feature_use=True,
                                    first_product_use=True)
        return _by_event(pb, made, facts, given=False)
    found = decide(pb, ManualStart(account_id=acc.id, by="csops simulate"), facts)
    if found is not None:
        return _said(found)
    kind = pb.triggers[0].kind if pb.triggers else "manual"
    return Start(trigger={"type": kind, "index": 0, "simulated": True}, occurrence="",
                 note=f"no trigger fires for this account on {today.isoformat()}: started directly as {kind}")


def _said(found: Any) -> Start:
    said = found.message if found.outcome == "start" else f"{found.message} (simulated anyway)"
    return Start(trigger=dict(found.trigger_data), occurrence=found.occurrence, note=said)


def _by_event(pb: m.Playbook, ev: EventSignal, facts: Facts, *, given: bool) -> Start:
    from engine.triggers.matcher import decide, probe_trigger

    shown = json.dumps(dict(ev.data), sort_keys=True, default=str)
    defaulted = "" if given else f"a {ev.type} event with data {shown}"
    how = "" if given else (f"no trigger event given: a default {ev.type} event with data {shown} "
                            "(--trigger-event, or trigger: in a test case, gives another); ")
    found = decide(pb, ev, facts)
    if found is not None and found.reason == "expression_error":
        why = found.message.removeprefix("suppressed: ").split("; fix the expression")[0]
        which = "the default" if not given else "the given"
        raise TriggerEventError(f"{why.replace('for this account', f'for {which} {ev.type} event {shown}')}: "
                                f"give the event's data with --trigger-event '{{\"type\": \"{ev.type}\", "
                                "\"data\": {...}}' (in a test case: trigger:)")
    if found is not None:
        start = _said(found)
        return Start(trigger=start.trigger, occurrence=start.occurrence, note=how + start.note, defaulted=defaulted)
    listening = [(i, t, probe_trigger(t, ev, facts)) for i, t in enumerate(pb.triggers)]
    heard = [(i, t, p) for i, t, p in listening if p is not None]
    if not heard:
        kinds = ", ".join(sorted({_listens(t) for t in pb.triggers})) or "none"
        raise TriggerEventError(f"no trigger of {pb.id} starts on a {ev.type} event (it starts on: {kinds}); give "
                                "an event of a type it listens to")
    i, trig, probe = heard[0]
    trigger = {"type": trig.kind, "index": i, **probe.seen, "event": ev.as_dict()}
    return Start(trigger=json.loads(json.dumps(trigger, default=str)), occurrence="", defaulted=defaulted,
                 note=f"{how}trigger {i + 1} ({trig.kind}) does not fire: {probe.why} (simulated anyway)")


def _listens(trig: m.Trigger) -> str:
    if isinstance(trig, m.EventTrigger):
        return f"{trig.type} events"
    names = {m.HealthDrop: "health.updated events", m.NewUsage: "usage.feature_used events",
             m.LifecycleChange: "account.updated events (lifecycle_stage)",
             m.ContractMilestone: "a date (the daily scan)", m.Schedule: "a schedule", m.Manual: "a manual start"}
    return names.get(type(trig), trig.kind)
