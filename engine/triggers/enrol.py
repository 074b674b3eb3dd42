"""From a trigger decision to a run: the one door every start goes through.

Events (engine/triggers/ingest.py), the daily scan and schedule ticks (engine/triggers/scan.py), and a person's or a
``start_playbook`` step's start (engine/triggers/door.py: ``csops start``, ``POST /v1/runs``) all end in
``enrol``; ``start`` is engine/root.py's ``Root.start``, which starts the run with the configured
calendar. Explain shares ``facts_for``.

``facts_for`` gathers what the matcher needs to know about a (playbook, account) from the store;
``enrol`` records the matcher's decision and, when it says start, starts the run (its workflow id
is the decision's run id, so a second start while one runs is "already running", never a second
run) and records the run. Nothing here decides anything: engine/triggers/matcher.py does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from engine.language import model as m
from engine.language.context import Calendar
from engine.store.store import Store
from engine.triggers.healthdrop import back
from engine.triggers.signals import Decision, Facts

MILESTONE_SCAN = "contract_milestone"
"""The name the daily scan of date triggers notes its last day under (``Store.last_scan``; engine.triggers.scan)."""
Start = Callable[[m.Playbook, Decision], Awaitable[tuple[str, str]]]
"""Starts the decision's run: ("started" or "already running", Temporal's run id or "")."""


@dataclass(frozen=True, kw_only=True)
class Enrolment:
    """What became of one decision."""

    decision: Decision
    """The matcher's decision."""
    outcome: str
    """started, suppressed or failed: as recorded."""
    message: str
    """In plain words."""


def health_window(playbook: m.Playbook, calendar: Calendar, now: datetime) -> timedelta:
    """How far back from ``now`` health history matters to the playbook's ``health_drop ... within``
    triggers (business days counted on the calendar, as the matcher counts them)."""
    longest = timedelta(0)
    for trigger in playbook.triggers:
        within = getattr(trigger, "within", None)
        if within is not None:
            longest = max(longest, now - back(now, within, calendar))
    return longest


async def facts_for(store: Store, playbook: m.Playbook, account: Mapping[str, Any], *, now: datetime,
                    calendar: Calendar, contacts: tuple[Mapping[str, Any], ...] = (),
                    previous_score: float | None = None, previous_band: str | None = None,
                    first_feature_use: bool = False, first_product_use: bool = False) -> Facts:
    """The matcher's facts about (playbook, account) now; ``account`` as expressions see it."""
    account_id = str(account["id"])
    window = health_window(playbook, calendar, now)
    dated = any(isinstance(t, m.ContractMilestone) for t in playbook.triggers)
    active, ended, keys, history, scanned = await asyncio.gather(
        store.active_run(playbook.id, account_id), store.last_ended(playbook.id, account_id),
        store.occurrences(playbook.id, account_id),
        store.health_since(account_id, now - window, prior=True) if window else _nothing(),
        store.last_scan(MILESTONE_SCAN) if dated else _no_day())
    return Facts(account=account, now=now, calendar=calendar, contacts=contacts, previous_score=previous_score,
                 previous_band=previous_band, health_history=tuple((at, score) for at, score, _ in history),
                 first_feature_use=first_feature_use, first_product_use=first_product_use, active_run=active,
                 last_run_ended_at=ended, started_keys=frozenset(keys), last_scan=scanned)


async def _nothing() -> list[tuple[datetime, float, str]]:
    return []


async def _no_day() -> date | None:
    return None


async def enrol(decision: Decision, playbook: m.Playbook, *, store: Store, start: Start,
                signal: Mapping[str, Any], now: datetime) -> Enrolment:
    """Start the run a decision asks for, and record the decision and the run.

    A start that fails (Temporal unreachable) is recorded as failed and raised again, so the caller
    can retry the signal later; the run id makes a retried start safe.
    """
    outcome: str = decision.outcome
    message, temporal_run_id = decision.message, ""
    if decision.outcome == "start":
        try:
            started, temporal_run_id = await start(playbook, decision)
        except Exception as exc:
            await _record(store, decision, signal, now, "failed", f"could not start the run: {exc}")
            raise
        if started == "started":
            outcome, message = "started", f"started {decision.run_id}"
            if decision.reason == "forced":  # the force and its reason stay visible in the record
                message += f", {decision.message}"
            await store.add_run(run_id=decision.run_id, temporal_run_id=temporal_run_id, playbook=playbook.id,
                                version=playbook.version, account_id=decision.account_id,
                                occurrence=decision.occurrence, trigger=decision.trigger_data, started_at=now)
        else:
            outcome, message = "suppressed", f"suppressed: a run is already active ({decision.run_id})"
    await _record(store, decision, signal, now, outcome, message)
    return Enrolment(decision=decision, outcome=outcome, message=message)


async def _record(store: Store, decision: Decision, signal: Mapping[str, Any], now: datetime, outcome: str,
                  message: str) -> None:
    reason = "already_active" if outcome == "suppressed" and decision.outcome == "start" else decision.reason
    await store.add_decision(at=now, playbook=decision.playbook, account_id=decision.account_id, signal=signal,
                             outcome=outcome, reason=reason, message=message, occurrence=decision.occurrence,
                             run_id=decision.run_id,
                             seen={**decision.seen, "trigger": {"index": decision.trigger.index,
                                                                "kind": decision.trigger.kind}})
