"""A scan's decisions: worked out by the matcher once per kind of account, then filled in for each account.

Thousands of a day's candidates get the same decision but for their id: the same milestone probe, the
same segment, stage and ``audience.when`` answer, the same occurrence key and no runs. ``decide_scan``
works out what a decision depends on beside the account's id and asks ``engine.triggers.matcher.decide``
only for the first account of each such kind; the others get a copy of its decision with their own
account id and run id (which is in the message of a start). Building a decision (its trigger data, what
it saw, its message) was most of the matcher's time in a scan.

A kind is found in two steps, each one dict look-up. First by the account's raw values that the probes
and the occurrence read (its date triggers' fields, segment, stage, and what ``entry.key`` reads, as
``evalmemo.seen_key`` gives it without converting the whole account): the kind holds the trigger data
of the first probe that fired and the occurrence, worked out once. Then by what differs from account to account
of a kind: the ``audience.when`` answer, the account's runs (active, occurrence used, last end).

Whatever is not plain takes the matcher's own path every time: a probe the memo does not hold, an
expression that fails, an account with an active run, a value that cannot be a key, an ``entry.key``
that reads more than the account, the trigger and the clock.
tests/unit/test_scan_fast.py checks that the decisions are the matcher's, field for field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.language.context import DATE_FIELDS
from engine.language.model import ContractMilestone, Playbook
from engine.payloads.runtypes import run_id_for
from engine.triggers.evalmemo import Memo, iso_dates, paths, seen_key
from engine.triggers.matcher import decide, evaluator, occurrence_of, probe_trigger
from engine.triggers.signals import Decision, Facts, Probe, Scan, lookup
from engine.triggers.whenfilter import holds as numbers_hold

__all__ = ["decide_scan"]

_PROBED = (str, date, type(None))
"""The values of a date field the ``Memo`` remembers probes for (a datetime's zone would not be in its key)."""
_CLOCK = frozenset({"trigger", "today", "now"})
"""What ``entry.key`` may read beside the account and still be the same for every account of a kind."""


@dataclass(frozen=True)
class _Shape:
    """A decision without its account: ``message`` is split where the run id goes."""

    decision: Decision
    message: tuple[str, ...]


@dataclass
class _Kind:
    """What every account with the same raw values (``_Plan.raw``) shares: its trigger data and occurrence."""

    data: dict[str, Any]
    """What the matcher's expressions see as ``trigger``."""
    occurrence: str
    when: bool
    """``audience.when`` is evaluated for these accounts (the playbook is enabled, segment and stage pass)."""
    shapes: dict[tuple[Any, ...], _Shape] = field(default_factory=dict)
    """Decisions by (``audience.when`` answer, active run, occurrence used, last run's end)."""


_SLOW = _Kind(data={}, occurrence="", when=False)
"""A kind decided by the general path, account by account."""
_NONE = _Kind(data={}, occurrence="", when=False)
"""A kind whose probes did not fire: no decision."""


class _Plan:
    """One playbook's scan of ``(since, today]`` at ``now`` with a calendar: what its kinds are read from."""

    def __init__(self, playbook: Playbook, facts: Facts, signal: Scan) -> None:
        self.context = (playbook, facts.calendar, facts.now, signal.today, signal.since)
        self.fields = tuple(dict.fromkeys(t.field for t in playbook.triggers if isinstance(t, ContractMilestone)))
        self.dotted = any("." in name for name in self.fields)
        self.kinds: dict[tuple[Any, ...], _Kind] = {}
        key = playbook.entry.key
        reads = paths(key) if key else ()
        self.usable = reads is not None and all(p[0] in _CLOCK or p[0] == "account" for p in reads)
        """Whether ``entry.key`` is the same for every account of a kind (else the general path, every time)."""
        # What it reads of the account; a date field of the triggers' own is in the kind already, as it is in
        # the account (ISO text), which says what account_seen makes of it but for the other date fields.
        self.reads = tuple(p for p in reads or () if p[0] == "account"
                           and not (len(p) == 2 and p[1] in self.fields and "." not in p[1]))
        self.dates = any(len(p) > 1 and p[1] in DATE_FIELDS for p in reads or () if p[0] == "account")

    def raw(self, account: dict[str, Any]) -> tuple[Any, ...] | None:
        """The account's values the kind depends on; None when one is not plain."""
        if self.dotted:
            values = [account[name] if name in account else lookup(account, name)[1] for name in self.fields]
        else:
            values = [account.get(name) for name in self.fields]  # as lookup() reads them
        for value in values:
            if type(value) not in _PROBED:
                return None
        segment, stage = account.get("segment"), account.get("lifecycle_stage")
        values += (type(segment), segment, type(stage), stage)  # as the matcher records them: True is not 1
        if self.reads:
            seen = seen_key(account, self.reads, self.dates)
            if seen is None:
                return None
            values.append(seen)
        elif self.dates:
            values.append(iso_dates(account))
        return tuple(values)


def decide_scan(playbook: Playbook, signal: Scan, facts: Facts, memo: Memo) -> Decision | None:
    """``decide(playbook, signal, facts, memo)``: the same decision, made once per kind of account."""
    if facts.active_run:
        return decide(playbook, signal, facts, memo)
    plan: _Plan | None = memo.decisions.get("scan-plan")
    if plan is None or plan.context != (playbook, facts.calendar, facts.now, signal.today, signal.since):
        plan = memo.decisions["scan-plan"] = _Plan(playbook, facts, signal)
    account = facts.account
    raw = plan.raw(account) if plan.usable and type(account) is dict else None
    if raw is None:
        return decide(playbook, signal, facts, memo)
    try:
        kind = plan.kinds.get(raw)
    except TypeError:  # a segment or stage that is not plain text
        return decide(playbook, signal, facts, memo)
    if kind is None:
        kind = plan.kinds[raw] = _kind_of(playbook, signal, facts, memo)
    if kind is _NONE:
        return None
    if kind is _SLOW:
        return decide(playbook, signal, facts, memo)
    holds, when = None, playbook.audience.when
    if kind.when and when:
        holds = numbers_hold(when, account)  # a comparison of numbers: answered here (whenfilter.py)
        if holds is None:
            try:
                holds = bool(evaluator(facts, kind.data, None, memo)(when))
            except Exception:  # noqa: BLE001 - the matcher words the error: its path, every time
                return decide(playbook, signal, facts, memo)
    occurrence = kind.occurrence
    key = (holds, facts.active_run, bool(occurrence) and occurrence in facts.started_keys, facts.last_run_ended_at)
    shape = kind.shapes.get(key)
    if shape is None:
        made = decide(playbook, signal, facts, memo)
        assert made is not None  # a trigger fired
        parts = tuple(made.message.split(made.run_id))
        if len(parts) <= 2 and made.reason != "expression_error":
            kind.shapes[key] = _Shape(decision=made, message=parts)
        return made
    # The shape's decision with this account's id, run id and message, and dicts of its own; set up
    # without the frozen dataclass's __init__ (a call of object.__setattr__ per field), as equal.
    d = shape.decision
    run_id = run_id_for(playbook.id, signal.account_id, occurrence)
    decision = object.__new__(Decision)
    decision.__dict__.update(d.__dict__, message=run_id.join(shape.message), account_id=signal.account_id,
                             run_id=run_id, trigger_data=dict(d.trigger_data), seen=dict(d.seen))
    return decision


def _kind_of(playbook: Playbook, signal: Scan, facts: Facts, memo: Memo) -> _Kind:
    """The kind of this account, worked out as the matcher does (the probes through the memo)."""
    fired: list[tuple[int, Probe]] = []
    for i, trig in enumerate(playbook.triggers):
        probe = probe_trigger(trig, signal, facts, memo)
        if probe is None:
            continue
        if probe.error or id(probe) not in memo.kept:
            return _SLOW
        if probe.fires:
            fired.append((i, probe))
    if not fired:
        return _NONE
    index, probe = fired[0]
    data = {"type": playbook.triggers[index].kind, "index": index, **probe.seen}  # as decide builds it
    occurrence, key_error = occurrence_of(playbook, signal, probe, evaluator(facts, data, None, memo))
    if key_error:
        return _SLOW
    aud, account = playbook.audience, facts.account
    when = bool(playbook.enabled and aud.when and (not aud.segments or account.get("segment") in aud.segments)
                and (not aud.lifecycle_stages or account.get("lifecycle_stage") in aud.lifecycle_stages))
    return _Kind(data=data, occurrence=occurrence, when=when)
