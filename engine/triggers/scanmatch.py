"""A scan's decisions: worked out by the matcher once per kind of account, then filled in for each account.

Thousands of a day's candidates get the same decision but for their id: the same milestone probe, the
same segment, stage and ``audience.when`` answer, the same occurrence key and no runs. ``decide_scan``
works out what a decision depends on beside the account's id (the probes, as the ``Memo`` remembers
them; the occurrence; the audience's answers; the account's runs; the clock) and asks
``engine.triggers.matcher.decide`` only for the first account of each such kind; the others get a copy
of its decision with their own account id and run id (which is in the message of a start). Building a
decision (its trigger data, what it saw, its message) was most of the matcher's time in a scan.

Whatever is not plain takes the matcher's own path every time: a probe the memo does not hold, an
expression that fails, an account with an active run, a value that cannot be a key.
tests/unit/test_scan_fast.py checks that the decisions are the matcher's, field for field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.language.model import Playbook
from engine.payloads.runtypes import run_id_for
from engine.triggers.evalmemo import Memo
from engine.triggers.matcher import decide, evaluator, occurrence_of, probe_trigger
from engine.triggers.signals import Decision, Facts, Probe, Scan
from engine.triggers.whenfilter import holds as numbers_hold

__all__ = ["decide_scan"]


@dataclass(frozen=True)
class _Shape:
    """A decision without its account: ``message`` is split where the run id goes."""

    decision: Decision
    message: tuple[str, ...]
    keep: tuple[Any, ...]
    """The objects whose ids are in the key: kept alive with it, so no other object takes an id."""


def decide_scan(playbook: Playbook, signal: Scan, facts: Facts, memo: Memo) -> Decision | None:
    """``decide(playbook, signal, facts, memo)``: the same decision, made once per kind of account."""
    fired: list[tuple[int, Probe]] = []
    for i, trig in enumerate(playbook.triggers):
        probe = probe_trigger(trig, signal, facts, memo)
        if probe is None:
            continue
        if probe.error or id(probe) not in memo.kept or facts.active_run:
            return decide(playbook, signal, facts, memo)
        if probe.fires:
            fired.append((i, probe))
    if not fired:
        return None
    index, probe = fired[0]
    # What the matcher's expressions see as ``trigger`` (decide builds the same from the same probe).
    data = memo.probe(("scan-trigger", id(playbook), index, id(probe)), _trigger_data, playbook, index, probe)
    ev = evaluator(facts, data, None, memo)
    occurrence, key_error = occurrence_of(playbook, signal, probe, ev)
    aud, account = playbook.audience, facts.account
    segment, stage = account.get("segment"), account.get("lifecycle_stage")
    holds = None
    if (playbook.enabled and not key_error and aud.when and (not aud.segments or segment in aud.segments)
            and (not aud.lifecycle_stages or stage in aud.lifecycle_stages)):
        holds = numbers_hold(aud.when, account)  # a comparison of numbers: answered here (whenfilter.py)
        if holds is None:
            try:
                holds = bool(ev(aud.when))
            except Exception:  # noqa: BLE001 - the matcher words the error: its path, every time
                return decide(playbook, signal, facts, memo)
    key = ("scan-decision", id(playbook), tuple((i, id(p)) for i, p in fired), occurrence, key_error, segment,
           stage, holds, facts.active_run, bool(occurrence) and occurrence in facts.started_keys,
           facts.last_run_ended_at, facts.now, id(facts.calendar), signal.since, signal.today)
    try:
        shape: _Shape | None = memo.decisions.get(key)
    except TypeError:  # a segment or stage that is not plain text
        return decide(playbook, signal, facts, memo)
    if shape is None:
        made = decide(playbook, signal, facts, memo)
        assert made is not None  # a trigger fired
        parts = tuple(made.message.split(made.run_id))
        if len(parts) > 2 or made.reason == "expression_error":
            return made
        memo.decisions[key] = _Shape(decision=made, message=parts, keep=(playbook, facts.calendar, *fired))
        return made
    # The shape's decision with this account's id, run id and message, and dicts of its own; set up
    # without the frozen dataclass's __init__ (a call of object.__setattr__ per field), as equal.
    d = shape.decision
    run_id = run_id_for(playbook.id, signal.account_id, occurrence)
    decision = object.__new__(Decision)
    decision.__dict__.update(d.__dict__, message=run_id.join(shape.message), account_id=signal.account_id,
                             run_id=run_id, trigger_data=dict(d.trigger_data), seen=dict(d.seen))
    return decision


def _trigger_data(playbook: Playbook, index: int, probe: Probe) -> dict[str, Any]:
    return {"type": playbook.triggers[index].kind, "index": index, **probe.seen}
