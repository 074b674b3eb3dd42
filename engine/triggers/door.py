"""The one door into a run for starts that come from a person or a step, over the same path as triggers.

Every run starts in ``engine.triggers.enrol.enrol``: an event's trigger (engine/triggers/ingest.py), the daily scan and
schedule ticks (engine/triggers/scan.py), and, through this module, ``csops start``, ``POST /v1/runs`` and a
``start_playbook`` step. ``enrol`` records the matcher's decision and the run in the store (so
``csops runs``, ``GET /v1/runs``, cancel, ``csops explain`` and event routing all know the run) and
starts the workflow with the ``Start`` the composition root (engine/root.py) built, which carries
the configured calendar.

Rules for the starts made here (docs/operations.md repeats them):

- A person (``start_by_hand``): the playbook needs a ``manual`` trigger; the matcher then applies the
  same checks as for any trigger (enabled, audience, one active run, entry key, cooldown). A start
  they suppress is recorded as suppressed and refused. ``force`` with a ``reason`` starts it anyway
  past the audience, the cooldown, an expression error or a missing ``manual`` trigger, and records
  decision reason ``forced`` with the reason text in the decision and in the run's ``trigger.forced``.
  Force never passes a run that is still active, an occurrence key already used (the run id is taken:
  pass another occurrence), or a disabled playbook (enable it first).
- A ``start_playbook`` step (``start_from_step``): no trigger of the target is needed (the step is the
  author's choice); the other rules apply. The step's result is ``started``, ``already running``, or
  ``suppressed (REASON): ...`` / ``not started: ...``; the run goes on to its next step in every case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import CRM
from engine.errors import CsopsError
from engine.language import model as m
from engine.language.context import Calendar
from engine.payloads.runcontext import read_view, view_data
from engine.payloads.runtypes import StartInput
from engine.store.store import Store
from engine.triggers.enrol import Enrolment, Start, enrol, facts_for
from engine.triggers.matcher import decide
from engine.triggers.signals import Decision, DirectStart, ManualStart, Signal

__all__ = ["UNFORCEABLE", "Door", "StartRefused", "start_by_hand", "start_from_step"]

UNFORCEABLE = ("already_active", "duplicate_occurrence", "disabled")
"""Decision reasons ``force`` does not pass."""


class StartRefused(CsopsError):
    """A start that did not happen: ``code`` says which rule, ``message`` in plain words.

    ``enrolment`` is set when the matcher decided (the suppressed decision is recorded); codes
    ``unknown_playbook``, ``unknown_account``, ``no_manual_trigger`` and ``reason_required`` have none.
    """

    def __init__(self, code: str, message: str, enrolment: Enrolment | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.enrolment = code, message, enrolment


@dataclass(frozen=True, kw_only=True)
class Door:
    """What a start needs; engine/root.py builds it (``Root.door``)."""

    store: Store
    """Decisions and runs are recorded here."""
    crm: CRM
    """The account and its people are read from it, for the audience and ``entry.key``."""
    playbooks: Callable[[], Mapping[str, m.Playbook]]
    """The valid playbooks by id (the root's registry)."""
    start: Start
    """Starts a decision's workflow, with the configured calendar (engine.runtime.temporal.temporal_starter)."""
    calendar: Calendar = field(default_factory=Calendar)
    """For the cooldown and ``today``."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The clock."""
    still_running: Callable[[str], Awaitable[bool]] | None = None
    """Checks a run the store has as active against Temporal (engine/runrecord.is_running)."""


_HOW_TO_FORCE = {"cli": ("--force --reason TEXT", "--reason TEXT"),
                 "api": ('"force": true with a "reason"', '"reason": TEXT')}
"""How each door says "force it" (the flags, the body's fields), then "give a reason"."""


async def start_by_hand(door: Door, playbook_id: str, account_id: str, *, by: str = "", occurrence: str = "",
                        force: bool = False, reason: str = "", via: str = "cli") -> Enrolment:
    """A person starts ``playbook_id`` for ``account_id`` (``csops start``, ``POST /v1/runs``).

    Args:
        door: The parts.
        playbook_id: The playbook.
        account_id: The account.
        by: Who, for the record.
        occurrence: An occurrence key; when given it wins over ``entry.key``.
        force: Start past the rules that allow it (see the module's docstring); needs ``reason``.
        reason: Why it is forced (recorded and shown by ``csops runs show`` and ``csops explain``).
        via: Where the start came from (``cli``, ``api``), for the decision's signal.

    Returns:
        The enrolment: outcome ``started``.

    Raises:
        StartRefused: not started; ``code`` is the rule (a decision reason such as ``cooldown``, or
            unknown_playbook, unknown_account, no_manual_trigger, reason_required).
    """
    reason = reason.strip()
    how = _HOW_TO_FORCE.get(via, _HOW_TO_FORCE["cli"])
    if force and not reason:
        raise StartRefused("reason_required", f"a forced start needs a reason ({how[1]}): it is recorded with "
                                              "the run")
    playbook = _playbook(door, playbook_id)
    signal_record = {"kind": "manual", "via": via, "by": by, **({"forced": reason} if force else {})}
    signal: Signal = ManualStart(account_id=account_id, by=by, occurrence=occurrence)
    if not any(isinstance(t, m.Manual) for t in playbook.triggers):
        if not force:
            raise StartRefused("no_manual_trigger", f"playbook {playbook.id} has no manual trigger, so a person "
                               f"cannot start it; add `- manual: {{}}` to its triggers in {playbook.source}, or "
                               f"force it with {how[0]}")
        signal = DirectStart(account_id=account_id, via="manual", details={"by": by}, occurrence=occurrence,
                             why=f"started by {by or 'a person'} (the playbook has no manual trigger)")
    decision = await _decide(door, playbook, signal)
    assert decision is not None  # a manual trigger or a DirectStart always fires
    if decision.outcome == "suppressed" and force and decision.reason not in UNFORCEABLE:
        decision = _forced(decision, reason, by)
    done = await enrol(decision, playbook, store=door.store, start=door.start, signal=signal_record, now=door.now())
    if done.outcome != "started":
        code = "already_active" if decision.outcome == "start" else decision.reason
        hint = (f"; {how[0]} starts it anyway" if code not in UNFORCEABLE and not force
                else "; force does not pass this rule" if force else "")
        raise StartRefused(code, f"{done.message} [rule: {code}]{hint}", done)
    return done


async def start_from_step(door: Door, inp: StartInput) -> str:
    """A ``start_playbook`` step enrols the account: the step's result, in words.

    ``started``, ``already running`` (a run of the target is active for the account), ``suppressed
    (REASON): ...`` (the audience, entry key or cooldown said no: recorded as a decision), or ``not
    started: ...`` (no such valid playbook, or the account is gone). The calling run goes on in every case.
    """
    trigger = {k: v for k, v in inp.trigger.items() if k not in ("type", "index")}
    signal_record = {"kind": "start_playbook", **trigger}
    try:
        playbook = _playbook(door, inp.playbook)
        signal = DirectStart(account_id=inp.account_id, via="start_playbook", details=trigger,
                             why=f"started by a start_playbook step of {trigger.get('run') or 'another run'}")
        decision = await _decide(door, playbook, signal)
    except StartRefused as exc:
        return f"not started: {exc.message}"
    assert decision is not None
    done = await enrol(decision, playbook, store=door.store, start=door.start, signal=signal_record, now=door.now())
    if done.outcome == "started":
        return "started"
    if decision.outcome == "start" or decision.reason == "already_active":
        return "already running"
    return f"suppressed ({decision.reason}): {done.message.removeprefix('suppressed: ')}"


def _playbook(door: Door, playbook_id: str) -> m.Playbook:
    books = door.playbooks()
    playbook = books.get(playbook_id)
    if playbook is None:
        raise StartRefused("unknown_playbook", f"there is no valid playbook {playbook_id!r}; known: "
                           f"{', '.join(sorted(books)) or 'none'} (csops validate says why one is missing)")
    return playbook


async def _decide(door: Door, playbook: m.Playbook, signal: Signal) -> Decision | None:
    """The matcher's decision for the signal, over the account as the CRM has it now."""
    view = await read_view(door.crm, signal.account_id)
    if view is None:
        raise StartRefused("unknown_account", f"the CRM has no account {signal.account_id!r}")
    data = view_data(view)
    now = door.now()
    facts = await facts_for(door.store, playbook, data["account"], now=now, calendar=door.calendar,
                            contacts=tuple(data["contacts"]))
    decision = decide(playbook, signal, facts)
    if (decision is not None and decision.reason == "already_active" and facts.active_run
            and door.still_running is not None and not await door.still_running(facts.active_run)):
        # The store had the run as active but Temporal says it ended (the record is now up to date).
        decision = decide(playbook, signal, await facts_for(door.store, playbook, data["account"], now=now,
                                                            calendar=door.calendar, contacts=tuple(data["contacts"])))
    return decision


def _forced(decision: Decision, reason: str, by: str) -> Decision:
    """The suppressed decision turned into a start, saying what was passed and why."""
    forced: dict[str, Any] = {"over": decision.reason, "reason": reason, "by": by}
    return dataclasses.replace(
        decision, outcome="start", reason="forced",
        message=f"forced past {decision.reason} ({decision.message.removeprefix('suppressed: ')}): {reason}",
        trigger_data={**decision.trigger_data, "forced": forced}, seen={**decision.seen, "forced": forced})
